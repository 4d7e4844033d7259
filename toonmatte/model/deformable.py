"""Modulated deformable convolution for inference: bilinear samples gathered in float32, then one GEMM.

``torchvision.ops.deform_conv2d`` (the reference, and what training uses) fills a column
buffer one sample at a time: on the CPU on a single thread, and on CUDA in a kernel launched
outside the current stream, so a CUDA graph of the pass cannot contain it (replayed, its
result is wrong). In ToonOut's decoder its CPU sampling takes more time than its arithmetic
(docs/performance.md).

Here every (pixel, kernel tap) sample is gathered first, then the columns meet the weights in
one matrix multiply, in the input's dtype (bf16 under autocast); sample positions, bilinear
weights and the samples themselves are float32. Two samplers, each the faster one on its device:

- CPU: a sample is a weighted sum of four input pixels, each a row of C channels of the
  channels-last input, which is what ``F.embedding_bag`` with per-sample weights computes,
  vectorized over channels. The bilinear weights carry the tap's modulation and are zero
  where a corner falls outside the image (torchvision's zero padding); corner indices are
  clamped inside. Bands of pixel rows keep the columns in cache.
- CUDA: ``F.grid_sample`` (bilinear, zero padding, corners aligned: the same interpolation)
  samples every tap at once, then the modulation multiplies the columns. cuDNN's sampler
  beats an embedding-bag gather there.

Both agree with torchvision to float32 rounding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

CPU_COLUMN_BUDGET = 24 * 2**20  # bytes of gathered float32 columns per band of rows on the CPU
CUDA_COLUMN_BUDGET = 2**31  # bytes of float32 columns per chunk of images on CUDA (hundreds of MB per image at 1024)


def modulated_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                            mask: torch.Tensor, padding: int) -> torch.Tensor:
    """``torchvision.ops.deform_conv2d(x, offset, weight, bias, padding=padding, mask=mask)`` for a
    size-preserving convolution (stride 1, no dilation, one offset group), without autograd.

    Returns ``x``'s dtype: channels-last memory from the CPU sampler, contiguous from CUDA's.
    """
    n, _, height, width = x.shape
    _, _, kh, kw = weight.shape
    taps = kh * kw
    if offset.shape != (n, 2 * taps, height, width) or mask.shape != (n, taps, height, width):
        raise ValueError(f"offsets {tuple(offset.shape)} and mask {tuple(mask.shape)} do not fit a {kh}x{kw} "
                         f"size-preserving deformable convolution of a {tuple(x.shape)} input")
    with torch.autocast(x.device.type, enabled=False):
        # grid_sample's aligned corners put a one-pixel side's only sample at 0 whatever the offset
        if (x.device.type == "cuda" or torch.compiler.is_exporting()) and height > 1 and width > 1:
            out = grid_sampled_deform_conv2d(x, offset, weight, mask, padding)
        else:
            out = gathered_deform_conv2d(x, offset, weight, mask, padding)
        return out if bias is None else out.add_(bias.to(out.dtype).view(1, -1, 1, 1))


def gathered_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor,
                           padding: int) -> torch.Tensor:
    """The embedding-bag sampler (see the module's docstring), in bands of rows; channels-last output."""
    n, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    taps = kh * kw
    dtype, device = x.dtype, x.device
    # channels-last rows: free when the maps already are channels-last float32, as the decoder's are in fp32
    table = x.permute(0, 2, 3, 1).reshape(n * height * width, channels).float()
    offsets = offset.permute(0, 2, 3, 1).reshape(n * height, width, taps, 2).float()
    masks = mask.permute(0, 2, 3, 1).reshape(n * height, width, taps).float()
    # weight (O, C, kh, kw) -> (taps x C, O), matching the columns' (tap, channel) order
    columns_weight = weight.permute(2, 3, 1, 0).reshape(taps * channels, out_channels).to(dtype)
    tap = torch.arange(taps, device=device)
    tap_y = (tap // kw - padding).float()
    column_x = torch.arange(width, device=device, dtype=torch.float32).view(1, width, 1) + (tap % kw - padding)
    out = torch.empty(n * height * width, out_channels, device=device, dtype=dtype)
    rows = max(1, min(n * height, CPU_COLUMN_BUDGET // (width * taps * channels * 4)))
    for r0 in range(0, n * height, rows):
        r1 = min(n * height, r0 + rows)
        row = torch.arange(r0, r1, device=device)
        row_y = row % height
        indices, weights = _bilinear_taps(offsets[r0:r1], masks[r0:r1], row_y, (row - row_y) * width,
                                          tap_y, column_x, height, width)
        columns = F.embedding_bag(indices, table, per_sample_weights=weights, mode="sum").to(dtype)
        torch.mm(columns.view(-1, taps * channels), columns_weight, out=out[r0 * width:r1 * width])
    return out.view(n, height, width, out_channels).permute(0, 3, 1, 2)


def grid_sampled_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor,
                               padding: int) -> torch.Tensor:
    """The grid-sample sampler (see the module's docstring), in chunks of images; needs height and
    width over 1. Contiguous output."""
    n, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    taps = kh * kw
    dtype, device = x.dtype, x.device
    tap = torch.arange(taps, device=device).view(1, taps, 1, 1)
    # positions in grid_sample's [-1, 1] coordinates, where -1 and 1 are the centres of the edge pixels
    base_y = torch.arange(height, device=device, dtype=torch.float32).view(1, 1, height, 1) + (tap // kw - padding)
    base_x = torch.arange(width, device=device, dtype=torch.float32).view(1, 1, 1, width) + (tap % kw - padding)
    columns_weight = weight.reshape(out_channels, channels * taps).to(dtype)

    def chunk(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        images = x.shape[0]
        pairs = offset.float().contiguous().view(images, taps, 2, height, width)
        grid_y = (pairs[:, :, 0] + base_y).mul_(2 / (height - 1)).sub_(1)
        grid_x = (pairs[:, :, 1] + base_x).mul_(2 / (width - 1)).sub_(1)
        grid = torch.stack([grid_x, grid_y], -1).view(images, taps * height, width, 2)
        samples = F.grid_sample(x.float().contiguous(), grid, mode="bilinear", padding_mode="zeros",
                                align_corners=True)  # (images, C, taps x H, W)
        columns = samples.view(images, channels, taps, height * width).to(dtype)
        columns *= mask.to(dtype).contiguous().view(images, 1, taps, height * width)
        return torch.matmul(columns_weight, columns.view(images, channels * taps, height * width))

    if torch.compiler.is_exporting():  # one chunk: the batch size stays symbolic in the exported graph
        return chunk(x, offset, mask).view(n, out_channels, height, width)
    images = max(1, CUDA_COLUMN_BUDGET // (channels * taps * height * width * 4))  # per chunk
    parts = [chunk(x[i0:i0 + images], offset[i0:i0 + images], mask[i0:i0 + images]) for i0 in range(0, n, images)]
    return (parts[0] if len(parts) == 1 else torch.cat(parts)).view(n, out_channels, height, width)


def _bilinear_taps(offsets: torch.Tensor, masks: torch.Tensor, row_y: torch.Tensor, row_base: torch.Tensor,
                   tap_y: torch.Tensor, column_x: torch.Tensor, height: int,
                   width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For T rows of pixels: the four input rows each (pixel, tap) sample blends and their weights,
    both (T * W * taps, 4), pixel-major. ``row_base`` is each row's first pixel in the table."""
    y = offsets[..., 0] + (row_y.view(-1, 1, 1) + tap_y)
    x = offsets[..., 1] + column_x
    y0, x0 = y.floor(), x.floor()
    fy, fx = y - y0, x - x0
    # a corner outside the image weighs nothing (torchvision's zero padding)
    weight_y = torch.stack([(1 - fy) * ((y0 >= 0) & (y0 < height)), fy * ((y0 >= -1) & (y0 < height - 1))], -1)
    weight_x = torch.stack([(1 - fx) * ((x0 >= 0) & (x0 < width)), fx * ((x0 >= -1) & (x0 < width - 1))], -1)
    weight_y *= masks.unsqueeze(-1)
    weights = weight_y.unsqueeze(-1) * weight_x.unsqueeze(-2)
    y0 = y0.clamp_(-1, height).long()  # clamped first: a non-finite offset must not overflow the cast
    x0 = x0.clamp_(-1, width).long()
    corner_y = torch.stack([y0, y0 + 1], -1).clamp_(0, height - 1) * width + row_base.view(-1, 1, 1, 1)
    corner_x = torch.stack([x0, x0 + 1], -1).clamp_(0, width - 1)
    indices = corner_y.unsqueeze(-1) + corner_x.unsqueeze(-2)
    return indices.view(-1, 4), weights.view(-1, 4)
