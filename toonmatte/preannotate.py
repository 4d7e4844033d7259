"""Predictions made ahead of time for the studio: ``predict FOLDER --out DIR --for-studio``.

Next to each ``<stem>.png`` alpha, a line in ``DIR/studio-<process>.jsonl`` records the source
image's sha256, the model and its version, the matte's uncertainty and when it was made. A team can
pre-annotate thousands of images on a GPU overnight, then start the studio with ``--predictions
DIR``: an image whose bytes and model version match a line opens at once, with no forward pass.
One file per process, so processes started by ``accelerate launch`` never write to the same file.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from toonmatte.dataset import hash_file
from toonmatte.errors import ToonmatteError, write_error
from toonmatte.evaluation.uncertainty import Uncertainty, uncertainty


@dataclass(frozen=True)
class StoredPrediction:
    """A pre-annotated matte: its alpha file, who made it, how unsure it is."""

    alpha: Path
    model: str
    version: str
    uncertainty: Uncertainty
    made_at: str


class PreAnnotations:
    """Writes the lines of one process (thread-safe: the writers of ``predict`` call it at once)."""

    def __init__(self, folder: Path, process: int = 0) -> None:
        self.path = folder / f"studio-{process}.jsonl"
        self._lock = threading.Lock()

    def record(self, source: Path, alpha_path: Path, alpha: np.ndarray, model: str, version: str) -> None:
        unsure = uncertainty(alpha)
        line = {"sha256": hash_file(source), "source": source.name, "alpha": alpha_path.name, "model": model,
                "version": version, "soft": unsure.soft, "fragments": unsure.fragments,
                "made_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        data = (json.dumps(line) + "\n").encode()
        with self._lock:
            try:
                with open(self.path, "ab") as sink:
                    sink.write(data)
                    sink.flush()
                    os.fsync(sink.fileno())
            except OSError as error:
                raise write_error(error, f"The studio index {self.path}") from None


def load_predictions(folder: Path) -> dict[str, StoredPrediction]:
    """sha256 of a source image -> its stored prediction (the latest line wins), from every process's file."""
    if not folder.is_dir():
        raise ToonmatteError(f"The predictions folder {folder} does not exist; pass the --out folder of "
                             "predict --for-studio.")
    found: dict[str, StoredPrediction] = {}
    for path in sorted(folder.glob("studio-*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, text in enumerate(lines, 1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
                found[line["sha256"]] = StoredPrediction(folder / line["alpha"], line["model"], line["version"],
                                                         Uncertainty(line["soft"], line["fragments"]), line["made_at"])
            except (ValueError, KeyError, TypeError):
                if number == len(lines):
                    continue  # a last line cut off by a crash while it was written
                raise ToonmatteError(f"Line {number} of {path} is damaged; "
                                     "remove it (or that file) and start again.") from None
    return found
