"""torchvision's modulated deformable convolution, computed in bands of output rows on the CPU.

``torchvision.ops.deform_conv2d`` on the CPU gathers its bilinear samples into a column buffer
of (C_in * k * k) x (H * W) floats on a single thread, then runs one matrix multiply. In
ToonOut's decoder the 7x7 branch at a quarter of 1024 makes that buffer 822 MB (plus three
output-sized buffers of 67 MB), and the sampling loop is the largest single cost of a CPU
forward pass: its 147 offset and mask planes are each re-read for every input channel.

Here the output is computed a band of T rows at a time, each band one torchvision call, the
bands spread over a few threads (the kernel releases the GIL). A band's call sees the whole
input, so samples that land anywhere keep their exact meaning, zero padding included. It gets
T output rows by a vertical stride s with ceil(H / s) = T: its output row j is placed at input
row j * s, and adding r0 + j - j * s to that row's vertical offsets moves every sample to where
output row r0 + j of the full convolution takes it. Only the offsets' rounding changes (a few
float32 ulps of a row coordinate). A band's offsets and masks stay in cache while every input
channel is sampled, and the buffers shrink with the band.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import torch
from torchvision.ops import deform_conv2d

COLUMN_BUDGET = 8 * 2**20  # bytes of column buffer per torchvision call (one band)
MAX_WORKERS = 4  # bands in flight; each holds its own column buffer
MIN_BANDED_SAMPLES = 2**20  # below this many samples one plain call is as fast

_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _executor(workers: int) -> ThreadPoolExecutor:
    with _pools_lock:
        if workers not in _pools:
            _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="toonmatte-dcn")
        return _pools[workers]


def band_layout(height: int, width: int, samples_per_pixel: int, workers: int) -> tuple[int, int]:
    """(rows per band, vertical stride) with ceil(height / stride) == rows: bands with at most
    ``COLUMN_BUDGET`` of columns and at least two per worker."""
    wanted = max(1, min(COLUMN_BUDGET // (samples_per_pixel * width * 4), -(-height // (2 * workers))))
    stride = -(-height // wanted)
    return -(-height // stride), stride


def modulated_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                            mask: torch.Tensor, padding: int) -> torch.Tensor:
    """``deform_conv2d(x, offset, weight, bias, padding=padding, mask=mask)`` for a size-preserving
    (odd kernel, stride 1, ``padding`` = kernel // 2) convolution; any other shape is one plain call."""
    height, width = offset.shape[2], offset.shape[3]
    samples_per_pixel = x.shape[1] * weight.shape[2] * weight.shape[3]
    size_preserving = weight.shape[2] == weight.shape[3] == 2 * padding + 1 and x.shape[2:] == offset.shape[2:]
    if (x.device.type != "cpu" or not size_preserving
            or samples_per_pixel * x.shape[0] * height * width < MIN_BANDED_SAMPLES):
        return deform_conv2d(x, offset, weight, bias, padding=padding, mask=mask)
    workers = min(torch.get_num_threads(), MAX_WORKERS)
    rows, stride = band_layout(height, width, samples_per_pixel, workers)
    # (start row, first row kept): the last band ends at the bottom and keeps only rows no other band has
    starts = list(range(0, height - rows, rows))
    bands = [(r0, 0) for r0 in starts] + [(height - rows, len(starts) * rows - (height - rows))]
    # the kernel wants contiguous (NCHW) tensors: convert channels-last maps once, not once per band
    x, offset, mask = x.contiguous(), offset.contiguous(), mask.contiguous()
    j = torch.arange(rows, dtype=offset.dtype, device=offset.device).view(1, 1, rows, 1)
    shift = j - j * stride  # + r0 per band: moves output row j of a band to row r0 + j
    # grad and inference modes are per thread: the workers take the caller's
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def band(start_keep: tuple[int, int]) -> torch.Tensor:
        r0, keep = start_keep
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            band_offset = offset[:, :, r0:r0 + rows].clone()
            band_offset[:, 0::2] += shift + r0
            out = deform_conv2d(x, band_offset, weight, padding=(padding, padding), stride=(stride, 1),
                                mask=mask[:, :, r0:r0 + rows])
            return out[:, :, keep:]

    parts = list(_executor(workers).map(band, bands)) if workers > 1 else [band(b) for b in bands]
    out = torch.cat(parts, dim=2)
    return out if bias is None else out.add_(bias.view(1, -1, 1, 1))
