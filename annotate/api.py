"""The studio's programmatic endpoints as plain functions: ``/matte`` and ``/save``.

``matte_file`` turns an image file into an RGBA cut-out PNG and an 8-bit mask PNG;
``save_file`` stores an image with a given mask as a dataset triple. The UI wires them to named
Gradio endpoints; errors are ``BadImageError`` / ``ToonmatteError`` with one sentence.
"""
from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from annotate.engine import Engine
from toonmatte.dataset import DatasetStore, encode_triple, hash_file, uniform_alpha_warning
from toonmatte.imaging.foreground import estimate_foreground
from toonmatte.imaging.imageio import load_image, load_mask, write_png_atomic


class OutputFolder:
    """Files handed to the browser or a client (downloads, endpoint results).

    Each call writes into a fresh subfolder (so two sessions never overwrite each other's file
    while keeping a readable file name); subfolders older than ``max_age`` seconds are deleted.
    Gradio copies returned files into its own cache, so these only need to live briefly.
    """

    def __init__(self, root: str | Path | None = None, max_age: float = 3600.0) -> None:
        self._temp = None
        if root is None:
            self._temp = tempfile.TemporaryDirectory(prefix="toonmatte-studio-")
            root = self._temp.name
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_age = max_age

    def _prune(self) -> None:
        cutoff = time.time() - self.max_age
        for folder in self.root.iterdir():
            try:
                if folder.is_dir() and folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                continue

    def write(self, arrays: dict[str, np.ndarray]) -> list[Path]:
        """Write ``{file name: uint8 array}`` as PNGs in one new subfolder; returns their paths in order."""
        self._prune()
        folder = self.root / uuid.uuid4().hex
        paths = []
        for name, array in arrays.items():
            path = folder / name
            write_png_atomic(path, array)
            paths.append(path)
        return paths


def matte_file(engine: Engine, image_path: str | Path, outputs: OutputFolder,
               decontaminate: bool = True) -> tuple[Path, Path]:
    """Matte an image file: (RGBA cut-out PNG, 8-bit mask PNG), named after the input."""
    from annotate.preview import cutout_rgba

    matte = engine.predict(Path(image_path))
    stem = Path(image_path).stem or "image"
    rgba = cutout_rgba(matte.image, matte.alpha, decontaminate)
    cut, mask = outputs.write({f"{stem}.png": rgba, f"{stem}_mask.png": matte.alpha})
    return cut, mask


def save_file(store: DatasetStore, image_path: str | Path, mask_path: str | Path,
              annotator: str | None = None) -> tuple[str, list[str]]:
    """Store an image file and its mask as a triple; returns the stem and warnings about the mask.

    The stem comes from the file name; the same image (by content) saved again reuses its stem,
    so the earlier triple moves to the history rather than being lost. Messages name the files
    by their names only (never the server's upload folder).
    """
    image = load_image(Path(image_path), label=Path(image_path).name).rgb
    mask = load_mask(mask_path, image.shape[:2], label=Path(mask_path).name)
    digest = hash_file(image_path)
    triple = encode_triple(image, mask, estimate_foreground(image, mask))
    with store.naming():
        stem = store.stem_for(Path(image_path).name, digest)
        stem = store.save_triple(stem, triple, source_path=None, source_hash=digest, annotator=annotator,
                                 status="corrected")
    warning = uniform_alpha_warning(mask)
    return stem, [] if warning is None else [warning]
