"""One image being corrected: its prediction, its current alpha, and what the editor shows.

The editor's background is the image with the current matte tinted over it; the person paints
on an empty "strokes" layer; strokes are decoded and applied only when they press Apply, Snap
or Save, and the editor is then reset to the new matte with an empty layer again.

An ``Item`` computes what the studio shows (the decontaminated foreground, the tinted editor
background and its PNG, preview-sized planes) lazily and once; an item made by ``with_alpha``
derives them from its predecessor's, redoing only the regions whose alpha changed, so that
applying a stroke to a 2048x2048 image costs what the stroke touched.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from annotate import preview
from annotate.engine import Engine
from annotate.incremental import FOREGROUND_REACH, changed_boxes, update_foreground
from annotate.queue import Prediction
from annotate.strokes import apply_strokes, snap, strokes_from_editor, tint
from toonmatte.dataset import DatasetStore, EncodedTriple
from toonmatte.errors import ToonmatteError
from toonmatte.evaluation.metrics import change_stats
from toonmatte.evaluation.uncertainty import Uncertainty
from toonmatte.imaging.foreground import estimate_foreground
from toonmatte.imaging.png import BandedPng

TINT_COLOR = (255, 0, 255)
TINT_OPACITY = 0.5
"""The background (alpha 0) is shown magenta at half opacity in the editor: distinct from the three brushes."""
LAYER_NAME = "strokes"
EDITOR_MAX_SIDE = 2048
"""Images larger than this (either side) are shown in the editor scaled down (see ``Item.editor_size``)."""


class _Source:
    """What depends only on the image (shared by every alpha of one item)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.values: dict[Any, Any] = {}


class _Renders:
    """Values computed from (image, alpha), and the previous alpha's values to update them from.

    ``basis`` maps a key to (value, the alpha it was computed for); a key computed here is
    derived from its basis when there is one (see ``Item.derived``).
    """

    def __init__(self, source: _Source | None = None, basis: dict[str, tuple[Any, np.ndarray]] | None = None) -> None:
        self.source = source or _Source()
        self.basis = basis or {}
        self.values: dict[Any, Any] = {}
        self.lock = threading.RLock()
        self._boxes: dict[tuple[int, int], tuple[np.ndarray, list]] = {}  # (id, margin) -> (that alpha, boxes)

    def successor(self, alpha: np.ndarray) -> _Renders:
        """Renders for a new alpha, to be derived from these (computed for ``alpha``)."""
        with self.lock:
            basis = dict(self.basis)
            basis.update({key: (value, alpha) for key, value in self.values.items() if key in INCREMENTAL})
        return _Renders(self.source, basis)

    def boxes(self, before: np.ndarray, after: np.ndarray, margin: int) -> list:
        """``changed_boxes(before, after, margin)``, computed once per earlier alpha."""
        key = (id(before), margin)
        if key not in self._boxes or self._boxes[key][0] is not before:
            self._boxes[key] = (before, changed_boxes(before, after, margin))
        return self._boxes[key][1]


INCREMENTAL = ("foreground", "tint", "tint_png", "cutout_png", "cutout_png_raw", "alpha_png")
"""Keys whose values a successor item updates instead of recomputing."""


@dataclass
class Item:
    """An image under correction: ``predicted`` is the model's alpha (the reset target), ``alpha`` the
    current one, ``origin`` the alpha it was opened with or last saved (so ``unsaved`` can tell)."""

    stem: str
    image: np.ndarray
    predicted: np.ndarray
    alpha: np.ndarray
    engine: str
    version: str
    source_path: str | None = None
    source_hash: str | None = None
    origin: np.ndarray | None = None
    uncertainty: Uncertainty | None = None
    stored: str | None = None
    opened_at: float = field(default_factory=time.time, compare=False)
    _renders: _Renders = field(default_factory=_Renders, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.origin is None:
            self.origin = self.alpha

    def with_alpha(self, alpha: np.ndarray) -> Item:
        """A copy with a new current alpha; its renders are derived from this item's."""
        return replace(self, alpha=alpha, _renders=self._renders.successor(self.alpha))

    def saved(self) -> Item:
        """This item once its current alpha is stored (no unsaved changes)."""
        return replace(self, origin=self.alpha, opened_at=time.time())

    @property
    def unsaved(self) -> bool:
        """Whether the current alpha differs from the one opened or last saved."""
        assert self.origin is not None  # __post_init__ sets it
        return self.origin is not self.alpha and not np.array_equal(self.origin, self.alpha)

    # ------------------------------------------------------------ cached renders
    def derived(self, key: str, full: Callable[[], Any], update: Callable[[Any, np.ndarray], Any]) -> Any:
        """The value under ``key``: ``update(old value, old alpha)`` from the basis when there is one,
        else ``full()``; computed once."""
        renders = self._renders
        with renders.lock:
            if key not in renders.values:
                if key in renders.basis:
                    old, old_alpha = renders.basis.pop(key)
                    renders.values[key] = update(old, old_alpha)
                else:
                    renders.values[key] = full()
            return renders.values[key]

    def cached(self, key: Any, compute: Callable[[], Any], *, per_image: bool = False,
               valid: Callable[[Any], bool] | None = None) -> Any:
        """A value computed once for this alpha (or, ``per_image``, once for the image); recomputed
        when ``valid`` says the stored one is not (a file deleted since, say)."""
        store = self._renders.source if per_image else self._renders
        with store.lock:
            if key not in store.values or (valid is not None and not valid(store.values[key])):
                store.values[key] = compute()
            return store.values[key]

    def changed_rows(self, old_alpha: np.ndarray, reach: int = 0) -> list[slice]:
        """Row spans where the alpha changed since ``old_alpha``, grown by ``reach``."""
        return [rows for rows, _ in self._renders.boxes(old_alpha, self.alpha, reach)]

    def foreground(self) -> np.ndarray:
        """The decontaminated foreground colours (uint8 HxWx3) of the current alpha."""
        return self.derived("foreground", lambda: estimate_foreground(self.image, self.alpha),
                            lambda old, old_alpha: update_foreground(self.image, self.alpha, old, old_alpha))

    def colours(self, decontaminate: bool = True) -> np.ndarray:
        """The cut-out's colours: decontaminated, or the image's own."""
        return self.foreground() if decontaminate else self.image

    def cutout(self, decontaminate: bool = True) -> np.ndarray:
        """The RGBA cut-out of the current alpha."""
        return self.cached(("cutout", decontaminate), lambda: np.dstack([self.colours(decontaminate), self.alpha]))

    def tint(self) -> np.ndarray:
        """The editor's background: the image with the backdrop tinted."""
        def update(old: np.ndarray, old_alpha: np.ndarray) -> np.ndarray:
            out = old.copy()
            for box in self._renders.boxes(old_alpha, self.alpha, 0):
                out[box] = tint(self.image[box], self.alpha[box], TINT_COLOR, TINT_OPACITY)
            return out
        return self.derived("tint", lambda: tint(self.image, self.alpha, TINT_COLOR, TINT_OPACITY), update)

    def png(self, key: str, array: Callable[[], np.ndarray], reach: int = 0) -> BandedPng:
        """``array()`` as a ``BandedPng`` under ``key``, re-encoded only where the alpha changed (grown by
        ``reach``)."""
        return self.derived(key, lambda: BandedPng(array()),
                            lambda old, old_alpha: old.update(array(),
                                                              self.changed_rows(old_alpha, reach)))

    def tint_png(self) -> BandedPng:
        return self.png("tint_png", self.tint)

    def editor_size(self) -> tuple[int, int]:
        """(height, width) the editor shows: the image, scaled down to ``EDITOR_MAX_SIDE`` when larger.

        The browser holds the image and a stroke canvas of this size, and tens of megapixels of
        them make it slow to draw; strokes painted on the smaller canvas are scaled back to full
        resolution (nearest neighbour), so edits still land on full-resolution pixels.
        """
        h, w = self.alpha.shape
        scale = min(1.0, EDITOR_MAX_SIDE / max(h, w))
        return max(1, round(h * scale)), max(1, round(w * scale))

    def editor_png(self) -> bytes:
        """The editor's background as PNG bytes, at ``editor_size``."""
        h, w = self.editor_size()
        if (h, w) == self.alpha.shape:
            return self.tint_png().tobytes()
        return self.cached("editor_png", lambda: BandedPng(cv2.resize(self.tint(), (w, h),
                                                                      interpolation=cv2.INTER_AREA)).tobytes())

    def cutout_png(self, decontaminate: bool = True) -> BandedPng:
        if decontaminate:
            return self.png("cutout_png", lambda: self.cutout(True), FOREGROUND_REACH)
        return self.png("cutout_png_raw", lambda: self.cutout(False))

    def alpha_png(self) -> BandedPng:
        return self.png("alpha_png", lambda: self.alpha)

    def small_image(self) -> np.ndarray:
        """The image at preview size."""
        return self.cached("small_image", lambda: preview.thumbnail(self.image, preview.PREVIEW_SIDE), per_image=True)

    def small_alpha(self) -> np.ndarray:
        return self.cached("small_alpha", lambda: preview.thumbnail(self.alpha, preview.PREVIEW_SIDE))

    def small_colours(self, decontaminate: bool = True) -> np.ndarray:
        """The cut-out's colours at preview size."""
        if not decontaminate:
            return self.small_image()
        return self.cached("small_foreground", lambda: preview.thumbnail(self.foreground(), preview.PREVIEW_SIDE))

    def view(self, choice: str, colour: str | None, decontaminate: bool = True) -> np.ndarray:
        """The preview image (RGB, preview size) for one of ``preview.BACKGROUNDS``."""
        if choice in preview.OVERLAYS:
            predicted = self.cached("small_predicted", lambda: preview.thumbnail(self.predicted, preview.PREVIEW_SIDE),
                                    per_image=True)
            return preview.overlay(self.small_image(), predicted, self.small_alpha(), choice)
        return preview.compose(self.small_colours(decontaminate), self.small_alpha(), choice, colour)


def from_prediction(store: DatasetStore, prediction: Prediction) -> Item:
    """The item for a queue prediction; if the stem already has a saved triple of the same image,
    editing resumes from the saved alpha (the prediction stays the reset target)."""
    alpha = prediction.alpha
    record = store.get(prediction.stem)
    if record is not None and record.versions > 0:
        try:
            image, gt, _ = store.load_triple(prediction.stem)
        except ToonmatteError:
            image, gt = None, None
        if gt is not None and image is not None and np.array_equal(image, prediction.image):
            alpha = gt
    return Item(prediction.stem, prediction.image, prediction.alpha, alpha, prediction.engine, prediction.version,
                str(prediction.path), prediction.source_hash, uncertainty=prediction.uncertainty,
                stored=prediction.stored)


def from_store(store: DatasetStore, stem: str, engine: Engine) -> Item:
    """Reopen a saved item: its saved image and alpha, with the engine's prediction of the image as the
    reset target, recorded under the engine's model version (as a queue prediction is)."""
    image, gt, _ = store.load_triple(stem)
    record = store.get(stem)
    matte = engine.predict(image)
    return Item(stem, image, matte.alpha, gt, matte.engine, engine.version(),
                record.source_path if record else None, record.source_hash if record else None)


def apply_editor(item: Item, value: dict | None, how: str = "apply") -> tuple[Item, bool]:
    """Apply the strokes painted in the editor ``value``: ``how`` is "apply" or "snap" (GrabCut).

    Returns the updated item and whether anything was painted; pixels not painted keep their alpha.
    """
    strokes = strokes_from_editor(value, item.alpha.shape)
    if not strokes.any():
        return item, False
    if how == "snap":
        alpha = snap(item.image, item.alpha, strokes)
    elif how == "apply":
        alpha = apply_strokes(item.image, item.alpha, strokes)
    else:
        raise ValueError(f"unknown stroke action {how!r}")
    return item.with_alpha(alpha), True


def triple(item: Item) -> EncodedTriple:
    """The item's triple as it is saved: ``an`` always decontaminated, with the prediction and the
    change statistics of the current alpha against it.

    The PNGs come from the item's caches: the downloads already encoded ``an`` and ``gt`` (updated
    where the matte changed), and ``im`` and the prediction are encoded once per image.
    """
    return EncodedTriple(im=item.cached("image_png", lambda: BandedPng(item.image).tobytes(), per_image=True),
                         gt=item.alpha_png().tobytes(), an=item.cutout_png(True).tobytes(),
                         prediction=item.cached("predicted_png", lambda: BandedPng(item.predicted).tobytes(),
                                                per_image=True),
                         changes=change_stats(item.predicted, item.alpha))


def save(store: DatasetStore, item: Item, annotator: str | None = None) -> str:
    """Store the item's ``triple`` with its provenance; returns the stem."""
    return store.save_triple(item.stem, triple(item), source_path=item.source_path, source_hash=item.source_hash,
                             model=item.engine, model_version=item.version, annotator=annotator,
                             status="corrected", seconds=time.time() - item.opened_at)
