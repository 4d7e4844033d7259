"""ZeroGPU: the Hugging Face Space hardware that lends a GPU to one function call at a time.

On ZeroGPU (``$SPACES_ZERO_GPU`` is true and the ``spaces`` package is installed) the Space's own
process never holds a GPU. Importing ``spaces`` patches torch so that ``.to("cuda")`` only records
which tensors to move, and only in the thread that imported it (torch function modes are per
thread); a function wrapped in ``spaces.GPU`` runs in a forked worker process that is handed a
GPU and the recorded tensors for that call, with its arguments and result pickled across.
Hence, in the studio:

- the model is loaded and placed on "cuda" in the main thread, outside any GPU call
  (``annotate.engine.Engine.start``);
- CUDA graphs are off: a graph captured in one worker does not survive it, and capturing costs
  more than the few passes a call makes; ``torch.compile`` is not used by the studio at all and
  is not supported there; the ONNX backend is refused (its CUDA session would be created at load,
  in a process with no GPU);
- every model call goes through :func:`gpu` with a duration that fits it (:func:`duration`).

Everywhere else (``spaces`` not installed, a CPU or a dedicated-GPU Space, a local machine)
:func:`gpu` returns the function unchanged and nothing here has any effect. This module is
part of the studio, not the engine package: ``spaces`` imports Gradio, and the GPU durations
are those of the studio's calls.
"""
from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sized
from typing import TypeVar

log = logging.getLogger(__name__)

ENV = "SPACES_ZERO_GPU"
"""Set to true by Hugging Face on a ZeroGPU Space (read the same way as ``spaces.config``)."""
DURATIONS = {"image": 15, "prefetch": 15, "batch": 15}
"""Seconds of GPU asked for by a call of each kind, for its first image. The pass itself takes a
fraction of a second; the margin covers a worker's start (CUDA context, moving the weights twice over:
fp32 for recomputes plus the bf16 copy). ZeroGPU refuses a request longer than what is left
of the visitor's daily quota and queues shorter ones first, so asking for more than needed hurts."""
PER_EXTRA_IMAGE_S = 1
"""Seconds added for each further image of a batch (a pass plus pre- and post-processing)."""
MAX_DURATION_S = 60
"""The longest request: ZeroGPU refuses durations past a per-account maximum."""
BATCH_IMAGES = (MAX_DURATION_S - DURATIONS["batch"]) // PER_EXTRA_IMAGE_S + 1
"""Images sent in one GPU call, so that a batch's request stays within ``MAX_DURATION_S``."""

QUEUE_SIZE = 64
"""Events that may wait in Gradio's queue on ZeroGPU. Gradio keeps a single waiting event there
unless told otherwise, which would turn away a team's strokes and saves as soon as one person's
model call waits for another's."""

Task = TypeVar("Task", bound=Callable)


def _true(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "t", "true")


@functools.cache
def active() -> bool:
    """True on a ZeroGPU Space: ``$SPACES_ZERO_GPU`` is true and the ``spaces`` package agrees.

    Without the package the studio still runs, on the CPU; a warning says how to get the GPU.
    """
    if not _true(os.environ.get(ENV)):
        return False
    try:
        import spaces.config
    except ImportError:
        log.warning("This is a ZeroGPU Space but the spaces package is not installed, so the model runs on the "
                    "CPU; add spaces to requirements.txt.")
        return False
    return bool(spaces.config.Config.zero_gpu)


def gpu(task: Task, duration: Callable[..., int]) -> Task:
    """``task`` run with a GPU on ZeroGPU (``spaces.GPU``, asking for ``duration(*args)`` seconds), else ``task``
    itself.

    Call it before the app launches: ZeroGPU only starts a Space that has registered a GPU function by then.
    """
    if not active():
        return task
    import spaces

    return spaces.GPU(task, duration=duration)


def duration(images: Sized, purpose: str) -> int:
    """Seconds of GPU to ask for to matte ``images`` for ``purpose`` ("image", "prefetch" or "batch")."""
    return min(MAX_DURATION_S, DURATIONS[purpose] + PER_EXTRA_IMAGE_S * max(0, len(images) - 1))
