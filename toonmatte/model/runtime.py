"""What this CPU can do fast, and one process-wide allocator setting that an entry point may choose.

:func:`keep_freed_memory` changes glibc's allocator for the whole process, so no library call
makes it: the command line (``toonmatte.cli``) and the studio opt in at their entry points,
through :func:`keep_freed_memory_on_cpu`, before they load the model; ``TOONMATTE_KEEP_FREED_MEMORY=0``
opts out (the test suite does, so that commands it runs in-process leave its allocator alone).
"""
from __future__ import annotations

import ctypes
import functools
import os
import sys

import torch

_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
OPT_OUT_ENV = "TOONMATTE_KEEP_FREED_MEMORY"  # "0" (or off, no, false) leaves the allocator as it is
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int: its largest value, so the heap top is in effect never trimmed


def cpu_supports_bf16() -> bool:
    """Whether the CPU has bfloat16 matrix instructions (AVX512-BF16, which AMX CPUs also have).

    There, bf16 autocast runs the model much faster than fp32; without them bf16 is emulated and
    slower than fp32 (docs/performance.md).
    """
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(probe is not None and probe())


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc's malloc reuse freed memory instead of handing it back to the kernel.

    A forward pass allocates and frees gigabytes in blocks of tens of megabytes. By default
    each such block is a fresh ``mmap`` whose pages the kernel faults in and zeroes again
    on first touch, a noticeable share of a CPU forward pass (docs/performance.md). With
    ``mmap`` off and trimming off, freed blocks are reused; the price is that the process
    keeps its peak heap, which the next image needs anyway. All threads share one arena: the
    deformable convolutions' worker threads would otherwise each grow a heap of their own,
    which no other thread reuses. Applied once per process, for the whole process: only an
    entry point should call it. Returns whether it took effect (False off Linux/glibc).
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


def keep_freed_memory_on_cpu(device: str | torch.device | None) -> bool:
    """The entry points' opt-in: :func:`keep_freed_memory` when the model will run on the CPU.

    ``device`` is what ``Matter`` is given: None or "auto" mean CUDA when available. On a GPU the
    allocator is left as it is, since the model's memory is not glibc's there, and so it is when
    ``$TOONMATTE_KEEP_FREED_MEMORY`` is 0. Returns whether the setting is in effect.
    """
    if os.environ.get(OPT_OUT_ENV, "").strip().lower() in {"0", "off", "no", "false"}:
        return False
    if device in (None, "auto"):
        on_cpu = not torch.cuda.is_available()
    else:
        try:
            on_cpu = torch.device(device).type == "cpu"
        except (RuntimeError, TypeError):
            return False  # an unknown device: Matter will refuse it in one sentence
    return keep_freed_memory() if on_cpu else False
