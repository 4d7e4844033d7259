"""Where this process stands among those that ``accelerate launch`` started (through torchrun, or mpirun).

Read from the launcher's environment variables, without starting any process group: ``predict``
only needs its share of the files and a device of its own.
"""
from __future__ import annotations

import os

RANK = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK")
SIZE = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
LOCAL_RANK = ("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK")
_TRUE = {"1", "true", "yes", "on"}


def _first_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return default


def process_index() -> int:
    return _first_int(RANK, 0)


def process_count() -> int:
    return max(1, _first_int(SIZE, 1))


def local_index() -> int:
    return _first_int(LOCAL_RANK, 0)


def cpu_forced() -> bool:
    """``accelerate launch --cpu`` (or ``ACCELERATE_USE_CPU``) asked for the CPU."""
    return os.environ.get("ACCELERATE_USE_CPU", "").strip().lower() in _TRUE


def use_cpu_without_gpu() -> None:
    """Several processes on a machine without a GPU: tell accelerate to join them on the CPU. Without
    this, accelerate runs each process alone, and they would all train on all the data side by side."""
    import torch

    if process_count() > 1 and not torch.cuda.is_available():
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")


def own_device() -> str:
    """This process's device when the user asked for "auto": its own GPU by local rank, else the CPU."""
    import torch

    if cpu_forced() or not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{local_index() % torch.cuda.device_count()}"
