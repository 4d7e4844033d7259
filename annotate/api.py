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
from typing import Any

import numpy as np
from PIL import Image

from annotate.store import DatasetStore, hash_file
from toonmatte.errors import BadImageError
from toonmatte.imageio import load_image, write_png_atomic


class OutputFolder:
    """Files handed to the browser or a client (downloads, endpoint results).

    Each call writes into a fresh subfolder (so two sessions never overwrite each other's file
    while keeping a readable file name); subfolders older than ``max_age`` seconds are deleted.
    Gradio copies returned files into its own cache, so these only need to live briefly.
    """

    def __init__(self, root: str | Path | None = None, max_age: float = 3600.0) -> None:
        self._temp = None if root is not None else tempfile.TemporaryDirectory(prefix="toonmatte-studio-")
        self.root = Path(root) if root is not None else Path(self._temp.name)
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


def read_mask(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """An 8-bit single-channel mask of ``size`` (height, width) from a file.

    Grayscale ("L"), 1-bit and gray-valued RGB/RGBA files are accepted; anything else (colour,
    16-bit, another size) is a ``BadImageError``.
    """
    name = Path(path).name
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode == "1":
                image = image.convert("L")
            if image.mode == "L":
                mask = np.asarray(image).copy()
            elif image.mode in ("RGB", "RGBA"):
                rgb = np.asarray(image)[..., :3]
                if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
                    raise BadImageError(f"The mask {name} is a colour image; send an 8-bit grayscale PNG (255 = subject, 0 = background).")
                mask = rgb[..., 0].copy()
            else:
                raise BadImageError(f"The mask {name} is a {mode} image; send an 8-bit grayscale PNG (255 = subject, 0 = background).")
    except BadImageError:
        raise
    except (OSError, ValueError, SyntaxError) as error:
        raise BadImageError(f"The mask {name} could not be read ({error}); send an 8-bit grayscale PNG.") from None
    if mask.shape != tuple(size):
        raise BadImageError(f"The mask {name} is {mask.shape[1]}x{mask.shape[0]} but the image is {size[1]}x{size[0]}; send a mask of the same size.")
    return mask


def matte_file(engine: Any, image_path: str | Path, outputs: OutputFolder, decontaminate: bool = True) -> tuple[Path, Path]:
    """Matte an image file: (RGBA cut-out PNG, 8-bit mask PNG), named after the input."""
    from annotate.preview import cutout_rgba

    matte = engine.predict(Path(image_path))
    stem = Path(image_path).stem or "image"
    rgba = cutout_rgba(matte.image, matte.alpha, decontaminate)
    cut, mask = outputs.write({f"{stem}.png": rgba, f"{stem}_mask.png": matte.alpha})
    return cut, mask


def save_file(store: DatasetStore, image_path: str | Path, mask_path: str | Path, annotator: str | None = None) -> str:
    """Store an image file and its mask as a triple; returns the stem.

    The stem comes from the file name; the same image (by content) saved again reuses its stem,
    so the earlier triple moves to the history rather than being lost.
    """
    image = load_image(Path(image_path)).rgb
    mask = read_mask(mask_path, image.shape[:2])
    digest = hash_file(image_path)
    with store.naming():
        stem = store.stem_for(Path(image_path).name, digest)
        return store.save_triple(stem, image, mask, source_path=None, source_hash=digest,
                                 annotator=annotator, status="corrected")
