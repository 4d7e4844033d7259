"""The files the studio hands the browser: the editor's background, the previews and the downloads.

Gradio takes images as numpy arrays and encodes them itself (PNG at zlib's default level, about
a second for each 2048x2048 image), so the studio hands it finished files instead: the editor's
tinted background as a PNG re-encoded only where the matte changed (``toonmatte.imaging.png``), previews
at preview size as JPEG (the alpha-alone view as PNG, where compression artefacts would show),
and the full-resolution downloads as PNG. Each file is written once per matte and reused.

By default the files are written inside Gradio's file cache: Gradio serves a returned file from
there as it is, while a file from anywhere else is first hashed and copied into the cache (work
repeated for every full-resolution PNG after every Apply).
"""
from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from annotate import preview
from annotate.canvas import stage_html
from annotate.editing import Item
from toonmatte.errors import ToonmatteError

JPEG_QUALITY = 95
MAX_AGE = 3600.0
"""Written files older than this (seconds) are deleted; Gradio serves its own copies of them."""
PRUNE_EVERY = 60.0


def gradio_cache() -> Path:
    """Gradio's file cache, where it serves files from (``$GRADIO_TEMP_DIR`` or ``<tmp>/gradio``)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


class Renderer:
    """Writes an item's files into ``folder`` (by default a fresh temporary folder in ``gradio_cache()``)."""

    def __init__(self, folder: str | Path | None = None, max_age: float = MAX_AGE) -> None:
        self._temp = None
        if folder is None:
            parent = gradio_cache()
            parent.mkdir(parents=True, exist_ok=True)
            self._temp = tempfile.TemporaryDirectory(prefix="toonmatte-render-", dir=parent, ignore_cleanup_errors=True)
            folder = self._temp.name
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_age = max_age
        self._pruned = time.monotonic()
        self._lock = threading.Lock()

    def editor(self, item: Item) -> str:
        """The stroke editor's stage (``annotate.canvas``) showing ``editor_background``, with no strokes."""
        return stage_html(self.editor_background(item), item.editor_size(), item.stem)

    def editor_background(self, item: Item) -> str:
        """The editor's tinted image as a PNG file (scaled down when very large)."""
        return self._file(item, "editor", "background.png", item.editor_png)

    def views(self, item: Item, choice: str, colour: str | None, decontaminate: bool) -> tuple[str, tuple[str, str]]:
        """(the preview file, (before, after) files for the slider) for one of ``preview.BACKGROUNDS``."""
        custom = preview.custom_colour(colour) if choice == preview.CUSTOM else None
        if choice == preview.ALPHA:
            shown = self._file(item, ("view", choice), "alpha.png", lambda: _png(item.small_alpha()))
        else:
            shown = self._file(item, ("view", choice, custom, decontaminate), "preview.jpg",
                               lambda: _jpeg(item.view(choice, colour, decontaminate)))
        before = self._file(item, "before", "before.jpg", lambda: _jpeg(item.small_image()), per_image=True)
        return shown, (before, shown)

    def downloads(self, item: Item, decontaminate: bool) -> tuple[str, str]:
        """(RGBA cut-out PNG, 8-bit mask PNG) at full resolution, named after the item."""
        cut = self._file(item, ("cutout", decontaminate), f"{item.stem}.png",
                         lambda: item.cutout_png(decontaminate).tobytes())
        mask = self._file(item, "mask", f"{item.stem}_mask.png", lambda: item.alpha_png().tobytes())
        return cut, mask

    def _file(self, item: Item, key: object, name: str, encode: Callable[[], bytes], per_image: bool = False) -> str:
        """The file written for ``key`` of this item (written again if it was pruned since)."""
        def write() -> str:
            self._prune()
            path = self.folder / uuid.uuid4().hex / name
            try:
                path.parent.mkdir(parents=True)  # parents: Gradio's cache clean-up may have removed the folder
                path.write_bytes(encode())
            except OSError as error:
                raise ToonmatteError(f"Cannot write the studio's preview files ({error.strerror}); "
                                     "check that the server's disk has space.") from None
            return str(path)

        return item.cached(("file", key), write, per_image=per_image, valid=lambda path: Path(path).exists())

    def _prune(self) -> None:
        """Delete written files older than ``max_age``, at most once every ``PRUNE_EVERY`` seconds."""
        with self._lock:
            if time.monotonic() - self._pruned < PRUNE_EVERY:
                return
            self._pruned = time.monotonic()
        cutoff = time.time() - self.max_age
        for folder in self.folder.iterdir():
            try:
                if folder.is_dir() and folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                continue


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ToonmatteError("Could not encode a preview image; check the image data.")
    return data.tobytes()


def _png(gray: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", gray, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ToonmatteError("Could not encode a preview image; check the image data.")
    return data.tobytes()
