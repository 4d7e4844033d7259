"""torchvision's modulated deformable convolution, split over input channels on the CPU.

``torchvision.ops.deform_conv2d`` on the CPU gathers its bilinear samples into a column
buffer of (C_in * k * k) x (H * W) floats on a single thread, then runs one matrix multiply.
In ToonOut's decoder the 7x7 branch at a quarter of 1024 makes that buffer 822 MB, and the
sampling loop is the largest single cost of a CPU forward pass.

With one offset group every input channel is sampled at the same positions, so the output
is the sum over input-channel slices of the same convolution restricted to each slice. Each
slice is a separate torchvision call with a buffer a fraction of the size, and the slices
run on a thread each (the kernel releases the GIL), which spreads the sampling over the
cores. The result equals one call up to float summation order.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import torch
from torchvision.ops import deform_conv2d

COLUMN_BUDGET = 256 * 2**20  # bytes of column buffer per torchvision call
MAX_WORKERS = 4  # each worker holds a column buffer and three output-sized buffers of its own
MIN_PARALLEL_SAMPLES = 2**23  # below this many samples the extra output buffers cost more than the threads save

_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _executor(workers: int) -> ThreadPoolExecutor:
    with _pools_lock:
        if workers not in _pools:
            _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="toonmatte-dcn")
        return _pools[workers]


def channel_slices(channels: int, samples_per_channel: int, workers: int) -> list[slice]:
    """Input-channel slices: at least one per worker, each with at most ``COLUMN_BUDGET`` of columns."""
    by_memory = -(-channels * samples_per_channel * 4 // COLUMN_BUDGET)
    count = min(channels, -(-max(workers, by_memory) // workers) * workers)  # a multiple of the workers
    bounds = [round(i * channels / count) for i in range(count + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def modulated_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                            mask: torch.Tensor, padding: int) -> torch.Tensor:
    """``deform_conv2d(x, offset, weight, bias, padding=padding, mask=mask)`` with one offset group."""
    samples_per_channel = weight.shape[2] * weight.shape[3] * x.shape[0] * offset.shape[2] * offset.shape[3]
    samples = x.shape[1] * samples_per_channel
    workers = min(torch.get_num_threads(), MAX_WORKERS) if samples >= MIN_PARALLEL_SAMPLES else 1
    if x.device.type != "cpu" or (workers == 1 and samples * 4 <= COLUMN_BUDGET):
        return deform_conv2d(x, offset, weight, bias, padding=padding, mask=mask)
    slices = channel_slices(x.shape[1], samples_per_channel, workers)
    # the kernel wants contiguous (NCHW) tensors: convert channels-last maps once, not once per slice
    x, offset, mask = x.contiguous(), offset.contiguous(), mask.contiguous()
    # grad and inference modes are per thread: the workers take the caller's
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def partial_sum(group: list[slice]) -> torch.Tensor:
        out = None
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            for s in group:  # one slice at a time: one column buffer per worker
                term = deform_conv2d(x[:, s], offset, weight[:, s], padding=padding, mask=mask)
                out = term if out is None else out.add_(term)
        return out

    if workers == 1:
        out = partial_sum(slices)
    else:
        sums = list(_executor(workers).map(partial_sum, [slices[i::workers] for i in range(workers)]))
        out = sums[0]
        for term in sums[1:]:
            out.add_(term)
    return out if bias is None else out.add_(bias.view(1, -1, 1, 1))
