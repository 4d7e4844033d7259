"""Foreground colour estimation (blur fusion) and cut-outs.

A matte alone leaves the background's colour bleeding through soft edges (gray fringes on hair). Blur
fusion (Forte and Pitié, "Approximate fast foreground colour estimation", ICIP 2021; the method of
BiRefNet's ``refine_foreground``) estimates the foreground colour F of every pixel so that
``F * alpha + B * (1 - alpha)`` reproduces the image with the background's share removed. It is not
Germer et al.'s multi-level method (pymatting's ``estimate_foreground_ml``), which solves for F and
B over an image pyramid. With I the image and a the alpha in [0, 1] and box_r a normalized box blur:

    ba = box_r(a);  F_ = box_r(F * a) / (ba + 1e-5);  B_ = box_r(B * (1 - a)) / (1 - ba + 1e-5)
    F' = clip(F_ + a * (I - a * F_ - (1 - a) * B_), 0, 1)

Pass 1 uses F = B = I and r = 90; pass 2 uses F = F'1, B = B_1 and r = 6.

``estimate_foreground`` reproduces the reference CPU output bit for bit: float32 arithmetic in the
reference's order, OpenCV's box blur (reflect-101 border) and truncation to 8 bits. For speed:

- the pointwise maths of each stage is one compiled loop (``toonmatte.imaging.blur_fusion``, numba) that
  reads the uint8 inputs and the blurred planes once; NumPy needed some forty array sweeps per pass;
- only the eight planes that get blurred are image-sized (a at both radii, F*a and B*(1-a) per
  channel, stored planar: OpenCV blurs a contiguous plane fastest), so little fresh memory is touched;
- bands of rows and the single-threaded blurs run on a small thread pool: the loops, like OpenCV,
  release the GIL. a's two blurs are queued before the six channel blurs of the first pass so that
  two threads finish the eight together.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import cv2
import numpy as np

from toonmatte.errors import BadImageError

if TYPE_CHECKING:
    import torch

Colour = str | Sequence[int]

RADII = (90, 6)
_EPS = 1e-5
# uint8 -> float32 exactly as the reference's ``x / 255.0`` (float64) rounded to float32
_LEVELS = (np.arange(256) / 255.0).astype(np.float32)


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _check_pair(image: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image, alpha = np.asarray(image), np.asarray(alpha)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise BadImageError(f"The image must be a non-empty uint8 HxWx3 RGB array, got {image.dtype} {image.shape}.")
    if alpha.ndim == 3 and alpha.shape[2] == 1:
        alpha = alpha[..., 0]
    if alpha.dtype != np.uint8 or alpha.shape != image.shape[:2]:
        raise BadImageError(
            f"The alpha must be a uint8 HxW array the size of the image {image.shape[:2]}, "
            f"got {alpha.dtype} {alpha.shape}."
        )
    return np.ascontiguousarray(image), np.ascontiguousarray(alpha)


def estimate_foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Foreground colours (uint8 HxWx3) of an RGB uint8 image under a uint8 alpha, by blur fusion."""
    from toonmatte.imaging.blur_fusion import fuse_rows, prepare_rows

    image, alpha = _check_pair(image, alpha)
    h, w = alpha.shape
    threads = _threads() if h * w >= 256 * 256 else 1
    step = -(-h // (4 * threads))
    bands = [(y, min(y + step, h)) for y in range(0, h, step)]
    planes = np.empty((8, h, w), np.float32)  # the blurred planes: besides the output, the only image-sized memory
    a6, a90, fa, bb = planes[0], planes[1], planes[2:5], planes[5:8]
    out = np.empty(image.shape, np.uint8)

    def blur_alpha() -> None:  # a is blurred at both radii now; a6 holds a until its own blur
        cv2.blur(a6, (RADII[0], RADII[0]), dst=a90)
        cv2.blur(a6, (RADII[1], RADII[1]), dst=a6)

    def blur(r: int) -> Callable[[np.ndarray], object]:
        return lambda plane: cv2.blur(plane, (r, r), dst=plane)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda band: prepare_rows(image, alpha, _LEVELS, *band, a6, fa, bb), bands))
        alpha_blurs = pool.submit(blur_alpha)  # two blurs, queued first so the six others fill in around them
        list(pool.map(blur(RADII[0]), [*fa, *bb]))
        alpha_blurs.result()
        list(pool.map(lambda band: fuse_rows(image, alpha, _LEVELS, *band, a90, fa, bb, out, False), bands))
        list(pool.map(blur(RADII[1]), [*fa, *bb]))
        list(pool.map(lambda band: fuse_rows(image, alpha, _LEVELS, *band, a6, fa, bb, out, True), bands))
    return out


def _reflect101(index: torch.Tensor, size: int) -> torch.Tensor:
    """Map any integer index into [0, size) like OpenCV's BORDER_REFLECT_101 (repeated mirroring)."""
    import torch

    if size == 1:
        return torch.zeros_like(index)
    period = 2 * (size - 1)
    index = index.abs() % period
    return torch.where(index >= size, period - index, index)


def box_sums_torch(x: torch.Tensor, r: int, accumulate: torch.dtype | None = None) -> torch.Tensor:
    """The r x r window sums behind OpenCV's ``cv2.blur(x, (r, r))`` on a (..., H, W) tensor: window
    [i - r//2, i - r//2 + r - 1], reflect-101 border (also when r exceeds the size), via cumulative sums in
    ``accumulate`` (default float64; float32 stays within a hundredth of an 8-bit level at 2048x2048).

    Each axis is one gather of the padded line, one cumulative sum and one difference. The gather takes one
    extra sample in front, so that ``c[i + r] - c[i]`` is the window at i without prepending a zero (a copy).
    """
    import torch

    out = x.to(accumulate or torch.float64)
    for dim in (-2, -1):
        n = out.shape[dim]
        before = r // 2 + 1
        index = _reflect101(torch.arange(-before, n + r - before, device=x.device), n)
        sums = out.index_select(dim, index).cumsum_(dim)
        out = sums.narrow(dim, r, n) - sums.narrow(dim, 0, n)
    return out


def box_blur_torch(x: torch.Tensor, r: int, accumulate: torch.dtype | None = None) -> torch.Tensor:
    """OpenCV's ``cv2.blur(x, (r, r))`` on a (..., H, W) tensor (see ``box_sums_torch``), in x's dtype."""
    return (box_sums_torch(x, r, accumulate) / (r * r)).to(x.dtype)


def estimate_foreground_torch(
    image: torch.Tensor, alpha: torch.Tensor, accumulate: torch.dtype | None = None
) -> torch.Tensor:
    """Blur fusion on tensors (any device): image (B,3,H,W) and alpha (B,1,H,W) floats in [0, 1].

    Returns the foreground (B,3,H,W) as float32 in [0, 1] (computed in float32 whatever the input
    precision, the box sums in ``accumulate``: by default float32 on CUDA, float64 elsewhere);
    ``(F * 255).to(torch.uint8)`` matches ``estimate_foreground`` within one level.

    On a GPU this is bound by memory traffic, so each pass writes its seven blurred planes (a, F*a and
    B*(1-a)) straight into one buffer, keeps the window sums unnormalized (the r*r factors cancel in the
    ratios: box(F*a) / (box(a) + eps) = sums(F*a) / (sums(a) + eps*r*r)) and fuses the update's products
    into ``addcmul``s: fewer bytes moved than the formula written out op by op.
    """
    import torch

    if image.ndim != 4 or image.shape[1] != 3:
        raise BadImageError(f"The image tensor must be shaped (B, 3, H, W), got {tuple(image.shape)}.")
    if alpha.ndim != 4 or alpha.shape[1] != 1 or alpha.shape[0] != image.shape[0] or alpha.shape[2:] != image.shape[2:]:
        raise BadImageError(f"The alpha tensor must be shaped (B, 1, H, W) like the image, got {tuple(alpha.shape)}.")
    # float64 sums cost twice the memory traffic on a GPU, where this is bandwidth-bound
    accumulate = accumulate or (torch.float32 if image.is_cuda else torch.float64)
    image, a = image.float(), alpha.float()
    one_minus_a = 1 - a
    planes = torch.empty((image.shape[0], 7, *image.shape[2:]), dtype=torch.float32, device=image.device)
    planes[:, :1] = a
    fg, bg = image, image
    for r in RADII:
        torch.mul(fg, a, out=planes[:, 1:4])
        torch.mul(bg, one_minus_a, out=planes[:, 4:])
        sums = box_sums_torch(planes, r, accumulate)
        sum_a, sum_fa, sum_bb = sums[:, :1], sums[:, 1:4], sums[:, 4:]
        area_eps = _EPS * r * r
        f_ = (sum_fa / (sum_a + area_eps)).float()
        bg = (sum_bb / ((r * r + area_eps) - sum_a)).float()
        residual = torch.addcmul(image, a, f_, value=-1).addcmul_(one_minus_a, bg, value=-1)
        fg = torch.addcmul(f_, a, residual).clamp_(0, 1)
    return fg


def parse_colour(colour: Colour | np.ndarray) -> tuple[int, int, int]:
    """'#rrggbb', '#rgb' or an (r, g, b) sequence or array of 0..255 integers -> (r, g, b)."""
    if isinstance(colour, str):
        text = colour.strip().lstrip("#")
        if len(text) == 3:
            text = "".join(ch * 2 for ch in text)
        try:
            if len(text) != 6:
                raise ValueError
            return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
        except ValueError:
            raise BadImageError(f"The colour {colour!r} is not a '#rrggbb' hex "
                                "colour; write it like '#ffffff'.") from None
    values = list(colour)
    if len(values) != 3 or not all(isinstance(v, (int, np.integer)) and 0 <= v <= 255 for v in values):
        raise BadImageError(f"The colour {colour!r} must be three integers from 0 to 255, like (255, 255, 255).")
    return int(values[0]), int(values[1]), int(values[2])


def _background_plate(background: Colour | np.ndarray, height: int, width: int) -> np.ndarray:
    if isinstance(background, np.ndarray) and background.ndim == 3:
        if background.dtype != np.uint8 or background.shape[2] not in (3, 4) or background.size == 0:
            raise BadImageError(
                f"The background image must be a uint8 HxWx3 RGB array, got {background.dtype} {background.shape}."
            )
        plate = background[..., :3]
        if plate.shape[:2] != (height, width):
            plate = cv2.resize(plate, (width, height), interpolation=cv2.INTER_AREA
                               if plate.shape[0] * plate.shape[1] > height * width else cv2.INTER_LINEAR)
        return plate.astype(np.float32)
    r, g, b = parse_colour(background)
    return np.array([r, g, b], np.float32)


def cutout(image: np.ndarray, alpha: np.ndarray, background: Colour | np.ndarray | None = None,
           foreground: bool = True) -> np.ndarray:
    """Cut the subject out of an RGB uint8 image with a uint8 alpha.

    background None: RGBA uint8 (colours decontaminated by ``estimate_foreground`` when
    ``foreground`` is true, else the image's own). Otherwise background is a colour ('#rrggbb' or an
    (r, g, b) tuple) or an RGB image (resized to fit), and the result is the RGB uint8 composite
    ``F * a + B * (1 - a)``.
    """
    image, alpha = _check_pair(image, alpha)
    colours = estimate_foreground(image, alpha) if foreground else image
    if background is None:
        return np.dstack([colours, alpha])
    h, w = alpha.shape
    plate = _background_plate(background, h, w)
    a = alpha.astype(np.float32)[..., None] / 255.0
    out = colours.astype(np.float32) * a + plate * (1 - a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
