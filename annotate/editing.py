"""One image being corrected: its prediction, its current alpha, and what the editor shows.

The editor's background is the image with the current matte tinted over it; the person paints
on an empty "strokes" layer; strokes are decoded and applied only when they press Apply, Snap
or Save, and the editor is then reset to the new matte with an empty layer again.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from annotate import preview
from annotate.queue import Prediction
from annotate.store import DatasetStore
from annotate.strokes import apply_strokes, snap, strokes_from_editor, tint
from toonmatte.errors import ToonmatteError

TINT_COLOR = (255, 0, 255)
TINT_OPACITY = 0.5
"""The background (alpha 0) is shown magenta at half opacity in the editor: distinct from the three brushes."""
LAYER_NAME = "strokes"


@dataclass
class Item:
    """An image under correction: ``predicted`` is the model's alpha (the reset target), ``alpha`` the current one."""

    stem: str
    image: np.ndarray
    predicted: np.ndarray
    alpha: np.ndarray
    engine: str
    version: str
    source_path: str | None = None
    source_hash: str | None = None
    _cutouts: dict[bool, np.ndarray] = field(default_factory=dict, repr=False)

    def with_alpha(self, alpha: np.ndarray) -> "Item":
        """A copy with a new current alpha (and no cached cut-outs)."""
        return replace(self, alpha=alpha, _cutouts={})

    def cutout(self, decontaminate: bool = True) -> np.ndarray:
        """The RGBA cut-out of the current alpha, computed once per setting."""
        if decontaminate not in self._cutouts:
            self._cutouts[decontaminate] = preview.cutout_rgba(self.image, self.alpha, decontaminate)
        return self._cutouts[decontaminate]


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
                str(prediction.path), prediction.source_hash)


def from_store(store: DatasetStore, stem: str, predict: Callable[[np.ndarray], Any]) -> Item:
    """Reopen a saved item: its saved image and alpha, with ``predict(image)`` (a ``Matte``) as the reset target."""
    image, gt, _ = store.load_triple(stem)
    record = store.get(stem)
    matte = predict(image)
    return Item(stem, image, matte.alpha, gt, matte.engine, str(getattr(matte, "version", matte.engine)),
                record.source_path if record else None, record.source_hash if record else None)


def editor_value(item: Item | None) -> dict | None:
    """The ``gr.ImageEditor`` value: the tinted image as background and no strokes."""
    if item is None:
        return None
    return {"background": tint(item.image, item.alpha, TINT_COLOR, TINT_OPACITY), "layers": [], "composite": None}


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


def save(store: DatasetStore, item: Item, annotator: str | None = None) -> str:
    """Store the item's triple (``an`` always decontaminated) with its prediction for change stats; returns the stem."""
    return store.save_triple(item.stem, item.image, item.alpha, foreground=item.cutout(True)[..., :3],
                             predicted_alpha=item.predicted, source_path=item.source_path,
                             source_hash=item.source_hash, model=item.engine, model_version=item.version,
                             annotator=annotator, status="corrected")
