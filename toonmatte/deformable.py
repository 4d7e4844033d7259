"""Modulated deformable convolution for inference, as a gather of bilinear samples and one GEMM.

``torchvision.ops.deform_conv2d`` (the reference, and what training uses) fills a column
buffer one sample at a time: on the CPU on a single thread, and on CUDA in a kernel launched
outside the current stream, so a CUDA graph of the pass cannot contain it. In ToonOut's
decoder its sampling took more time than its arithmetic: 2.4 of the 3.1 s of the 7x7 branch
at a quarter of 1024 on a 2-vCPU CPU.

Here a sample is a weighted sum of four input pixels, each a row of C channels of the
channels-last input. ``F.embedding_bag`` with per-sample weights computes exactly that for
every (pixel, kernel tap) at once, vectorized over channels, on CPU and CUDA alike; the
bilinear weights are multiplied by the tap's modulation and zeroed where a corner falls
outside the image (torchvision's zero padding), and the corner indices are clamped inside.
The gathered columns, (pixels, taps x channels), then meet the weights in one matrix
multiply. Bands of pixel rows bound the column buffer. The result is the same as
torchvision's up to float32 rounding (about 1e-4 of the output's scale, closer than
torchvision's own banded CPU result), in the input's dtype: under bf16 autocast the
gather and the GEMM run in bf16, with coordinates and bilinear weights computed in float32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# bytes of gathered columns per band: small enough to stay in a CPU's cache hierarchy, large
# enough on CUDA that a batch-1 pass at 1024 is one band per convolution
COLUMN_BUDGET = {"cpu": 24 * 2**20, "cuda": 2**30}


def modulated_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                            mask: torch.Tensor, padding: int) -> torch.Tensor:
    """``torchvision.ops.deform_conv2d(x, offset, weight, bias, padding=padding, mask=mask)`` for a
    size-preserving convolution (stride 1, no dilation, one offset group), without autograd.

    Returns channels-last memory in ``x``'s dtype.
    """
    n, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    taps = kh * kw
    if offset.shape != (n, 2 * taps, height, width) or mask.shape != (n, taps, height, width):
        raise ValueError(f"offsets {tuple(offset.shape)} and mask {tuple(mask.shape)} do not fit a {kh}x{kw} "
                         f"size-preserving deformable convolution of a {tuple(x.shape)} input")
    dtype, device = x.dtype, x.device
    # channels-last rows: free when the maps already are channels-last, as the decoder's are
    table = x.permute(0, 2, 3, 1).reshape(n * height * width, channels)
    offsets = offset.permute(0, 2, 3, 1).reshape(n * height, width, taps, 2).float()
    masks = mask.permute(0, 2, 3, 1).reshape(n * height, width, taps).float()
    # weight (O, C, kh, kw) -> (taps x C, O), matching the columns' (tap, channel) order
    columns_weight = weight.permute(2, 3, 1, 0).reshape(taps * channels, out_channels).to(dtype)
    tap = torch.arange(taps, device=device)
    tap_y = (tap // kw - padding).float()
    tap_x = (tap % kw - padding).float()
    column_x = torch.arange(width, device=device, dtype=torch.float32).view(1, width, 1) + tap_x
    out = torch.empty(n * height * width, out_channels, device=device, dtype=dtype)
    budget = COLUMN_BUDGET.get(device.type, COLUMN_BUDGET["cuda"])
    rows = max(1, min(n * height, budget // (width * taps * channels * x.element_size())))
    with torch.autocast(device.type, enabled=False):
        for r0 in range(0, n * height, rows):
            r1 = min(n * height, r0 + rows)
            row = torch.arange(r0, r1, device=device)
            row_y = row % height
            indices, weights = _bilinear_taps(offsets[r0:r1], masks[r0:r1], row_y, (row - row_y) * width,
                                              tap_y, column_x, height, width)
            columns = F.embedding_bag(indices, table, per_sample_weights=weights.to(dtype), mode="sum")
            torch.mm(columns.view(-1, taps * channels), columns_weight, out=out[r0 * width:r1 * width])
    if bias is not None:
        out += bias.to(dtype)
    return out.view(n, height, width, out_channels).permute(0, 3, 1, 2)


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
