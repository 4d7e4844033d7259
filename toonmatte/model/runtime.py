"""What this CPU can do fast, and one process-wide allocator setting that makes the model faster on it."""
from __future__ import annotations

import ctypes
import functools
import sys

import torch

_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int: trim only above 2 GiB of free heap top


def cpu_supports_bf16() -> bool:
    """Whether the CPU has bfloat16 matrix instructions (AVX512-BF16, which AMX CPUs also have).

    There, bf16 autocast runs the model about three times faster than fp32; without them
    bf16 is emulated and slower than fp32.
    """
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(probe is not None and probe())


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc's malloc reuse freed memory instead of handing it back to the kernel.

    A forward pass allocates and frees gigabytes in blocks of tens of megabytes. By default
    each such block is a fresh ``mmap`` whose pages the kernel faults in and zeroes again
    on first touch, which costs about an eighth of the fp32 forward time on a 2-vCPU VM.
    With ``mmap`` off and trimming off, freed blocks are reused; the price is that the
    process keeps its peak heap, which the next image needs anyway. All threads share one
    arena: the deformable convolutions' worker threads would otherwise each grow a heap of
    their own, which no other thread reuses (0.25 GiB more peak RSS at 1024). Applied once
    per process; returns whether it took effect (False off Linux/glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return all(mallopt(parameter, value) for parameter, value in
               ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER_TRIM), (_M_ARENA_MAX, 1)))
