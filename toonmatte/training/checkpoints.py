"""Resumable training states in ``RUN/checkpoints/step-NNNNNNNN/``: accelerate's ``save_state`` (model,
optimizer, scheduler, every process's RNG states) plus our ``progress.json`` (epoch, step, history).

A state is written under a hidden temporary name and renamed into place only once complete, and
``progress.json`` is written last: a folder without it is never resumed from. The previous state
is deleted only after the new one is in place, so a kill at any moment leaves one whole state.
With several nodes, RUN must be on a file system that every node sees.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toonmatte.imaging.imageio import fsync_directory
from toonmatte.training.records import write_json

if TYPE_CHECKING:
    from accelerate import Accelerator

CHECKPOINTS = "checkpoints"
PROGRESS = "progress.json"
PREFIX = "step-"


def complete_checkpoints(run: Path) -> list[Path]:
    """Whole states of ``run``, oldest first."""
    folder = run / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [path for path in folder.iterdir()
             if path.name.startswith(PREFIX) and path.name[len(PREFIX):].isdigit() and (path / PROGRESS).is_file()]
    return sorted(found, key=lambda path: int(path.name[len(PREFIX):]))


def latest_checkpoint(run: Path) -> Path | None:
    found = complete_checkpoints(run)
    return found[-1] if found else None


def read_progress(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / PROGRESS).read_text(encoding="utf-8"))


def save_checkpoint(accelerator: Accelerator, run: Path, step: int, progress: dict[str, Any]) -> Path:
    """Save the training state after optimizer step ``step``; every process must call this."""
    folder = run / CHECKPOINTS
    final, temporary = folder / f"{PREFIX}{step:08d}", folder / f".{PREFIX}{step:08d}.tmp"
    if (final / PROGRESS).is_file():  # this very state is saved already (a stopped run stopped again at once)
        if accelerator.is_main_process:
            write_json(final / PROGRESS, progress)
        accelerator.wait_for_everyone()
        return final
    if accelerator.is_main_process:
        shutil.rmtree(temporary, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(temporary / PROGRESS, progress)
        shutil.rmtree(final, ignore_errors=True)  # an incomplete folder of that name, if any
        os.replace(temporary, final)
        fsync_directory(folder)
        for path in folder.iterdir():
            if path != final and path.name.lstrip(".").startswith(PREFIX):
                shutil.rmtree(path, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


