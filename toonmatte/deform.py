"""Modulated deformable convolution (DCNv2) built on ``grid_sample`` and matrix multiplies.

It computes what ``torchvision.ops.deform_conv2d`` computes (stride 1, no dilation, one
offset group, zero outside the input) but on the CPU it is several times faster and
never materializes the full im2col matrix: chunks of output pixels are sampled with
PyTorch's vectorized bilinear sampler, scaled by their modulation and multiplied with
the filters in one matrix multiply per chunk. Sampling positions are normalized for
``grid_sample`` against a zero-padded canvas whose size makes the normalization an exact
power-of-two scaling, so they match torchvision's to within float rounding.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SAMPLE_BUDGET = 1 << 21  # sampled values held at once (8 MiB in float32: cache-sized chunks are fastest)
MAX_CHUNK_PIXELS = 4096  # keeps each output chunk cache-sized too, for small filter banks


def _canvas(size: int) -> int:
    """The smallest 2**k + 1 >= size: padded (with zeros, at the end) to it, the input's
    normalized coordinates are ``p / 2**(k-1) - 1``, whose scaling is exact."""
    return (1 << max(1, math.ceil(math.log2(max(size - 1, 1))))) + 1


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The matrix multiplies' dtype: autocast's when it is on (sampling always runs in float32)."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor,
                  padding: int, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x: B x C x H x W; offset: B x 2K x H x W as (dy, dx) per tap; mask: B x K x H x W; weight: O x C x k x k.

    Returns B x O x H x W (stride 1, ``padding = k // 2`` keeps the input's size) in
    channels-last memory. Works on chunks of output pixels: each is sampled at all K taps
    at once into a (C * K) x pixels matrix and multiplied with the whole filter bank.
    """
    b, c, h, w = x.shape
    cout, _, kh, kw = weight.shape
    taps, pixels = kh * kw, h * w
    dtype = _compute_dtype(x)
    canvas_h, canvas_w = _canvas(h), _canvas(w)
    scale = torch.tensor([2.0 / (canvas_w - 1), 2.0 / (canvas_h - 1)], device=x.device)
    # Integer tap positions as (x, y) (exact in float32), to which offsets are added as torchvision does.
    tap = torch.arange(taps, device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1) + (tap // kw - padding).view(taps, 1, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w) + (tap % kw - padding).view(taps, 1, 1)
    base = torch.stack(torch.broadcast_tensors(xs, ys), dim=-1).float().view(taps, pixels, 2)
    offset = offset.reshape(b, taps, 2, pixels).flip(2).transpose(2, 3)  # B x K x pixels x (dx, dy)
    mask = mask.reshape(b, taps, pixels)
    weight = weight.reshape(cout, c * taps).to(dtype)  # O x (C K), columns channel-major like the samples
    # grid_sample parallelizes over its batch only: each chunk is split into `parts` batch entries.
    parts = max(1, torch.get_num_threads())
    chunk = max(1, min(SAMPLE_BUDGET // (c * taps), MAX_CHUNK_PIXELS) // parts) * parts
    out = torch.empty(b, pixels, cout, device=x.device, dtype=dtype)
    with torch.autocast(x.device.type, enabled=False):
        # Channels-last input lets PyTorch's CPU grid sampler read each corner's channels at once (~5x faster).
        canvas = F.pad(x.float(), (0, canvas_w - w, 0, canvas_h - h)).contiguous(memory_format=torch.channels_last)
        for image in range(b):
            source = canvas[image:image + 1]
            grid = (base + offset[image].float()).mul_(scale).sub_(1.0)  # K x pixels x 2, normalized
            for start in range(0, pixels, chunk):
                span = min(chunk, pixels - start)
                split = parts if span % parts == 0 else 1
                step = span // split
                part = grid[:, start:start + span].reshape(taps, split, step, 2).transpose(0, 1).contiguous()
                sampled = F.grid_sample(source.expand(split, -1, -1, -1), part, mode="bilinear",
                                        padding_mode="zeros", align_corners=True)  # split x C x K x pixels
                modulation = mask[image, :, start:start + span].float().reshape(taps, split, 1, step)
                sampled = sampled.mul_(modulation.permute(1, 2, 0, 3)).view(split, c * taps, step).to(dtype)
                # O x pixels per part, transposed into the channels-last output (faster than a transposed operand).
                result = torch.bmm(weight.expand(split, -1, -1), sampled)
                out[image, start:start + span].view(split, step, cout).copy_(result.transpose(1, 2))
    if bias is not None:
        out += bias.to(dtype)
    return out.view(b, h, w, cout).permute(0, 3, 1, 2)
