"""ToonOut's training loss: a pixel loss on the final logits and on every stage's side logits, plus BCE
on the gradient-attention maps.

The pixel loss is IoU x 0.25 + MAE x 90 + SSIM x 10 on sigmoid probabilities against the soft
ground truth (never binarized). Side logits are upsampled to the ground truth's size first.

The gradient maps' target is the image's edge strength (the magnitude of the Laplacian of its
grey level, scaled to [0, 1] per image) inside the ground-truth foreground. BiRefNet masks the
Laplacian with its own stage-4 prediction instead; a target from the ground truth does not move
as the model learns.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

PIXEL_WEIGHTS = {"iou": 0.25, "mae": 90.0, "ssim": 10.0}
GRADIENT_WEIGHT = 1.0
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5
SSIM_C1, SSIM_C2 = 0.01 ** 2, 0.03 ** 2
EPS = 1e-6


def iou_loss(p: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """1 - soft IoU per image, averaged over the batch."""
    inter = (p * gt).sum((1, 2, 3))
    union = (p + gt - p * gt).sum((1, 2, 3))
    return (1.0 - inter / union.clamp_min(EPS)).mean()


def ssim_loss(p: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """1 - mean SSIM with an 11x11 Gaussian window (sigma 1.5), zero padding."""
    offsets = torch.arange(SSIM_WINDOW, dtype=p.dtype, device=p.device) - SSIM_WINDOW // 2
    g = torch.exp(-offsets ** 2 / (2 * SSIM_SIGMA ** 2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).view(1, 1, SSIM_WINDOW, SSIM_WINDOW)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, padding=SSIM_WINDOW // 2)

    mu_p, mu_g = blur(p), blur(gt)
    var_p = blur(p * p) - mu_p ** 2
    var_g = blur(gt * gt) - mu_g ** 2
    cov = blur(p * gt) - mu_p * mu_g
    ssim = (((2 * mu_p * mu_g + SSIM_C1) * (2 * cov + SSIM_C2))
            / ((mu_p ** 2 + mu_g ** 2 + SSIM_C1) * (var_p + var_g + SSIM_C2)))
    return 1.0 - ssim.mean()


def pixel_loss(logits: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    if logits.shape[-2:] != gt.shape[-2:]:
        logits = F.interpolate(logits, size=gt.shape[-2:], mode="bilinear", align_corners=True)
    p = torch.sigmoid(logits)
    return (PIXEL_WEIGHTS["iou"] * iou_loss(p, gt) + PIXEL_WEIGHTS["mae"] * (p - gt).abs().mean()
            + PIXEL_WEIGHTS["ssim"] * ssim_loss(p, gt))


def gradient_target(image: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Edge strength of the normalized image's grey level inside the foreground, in [0, 1] (B x 1 x H x W)."""
    grey = image.mean(1, keepdim=True)
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=grey.dtype, device=grey.device)
    edges = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernel.view(1, 1, 3, 3)).abs()
    edges = edges / edges.amax((1, 2, 3), keepdim=True).clamp_min(EPS)
    return edges * gt


def matte_loss(logits: torch.Tensor, heads: list[tuple[torch.Tensor, torch.Tensor]], image: torch.Tensor,
               gt: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The total loss and its two parts ("pixel", "gradient"), detached, for logging.

    ``heads`` are the model's (side logits, gradient logits) per stage (``BiRefNet(x, supervision=True)``).
    """
    logits, gt, image = logits.float(), gt.float(), image.float()
    sides = sum(pixel_loss(side.float(), gt) for side, _ in heads)
    pixel = pixel_loss(logits, gt) + sides
    target = gradient_target(image, gt)
    gradient = sum(F.binary_cross_entropy_with_logits(
        g.float(), F.adaptive_avg_pool2d(target, (g.shape[-2], g.shape[-1]))) for _, g in heads)
    assert isinstance(gradient, torch.Tensor)  # not sum's 0: there are heads (stages 4, 3 and 2)
    total = pixel + GRADIENT_WEIGHT * gradient
    return total, {"pixel": pixel.detach(), "gradient": gradient.detach()}
