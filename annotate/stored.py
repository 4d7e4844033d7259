"""The studio's predictor: a pre-annotated matte when one matches the image, else the engine; either
way with the matte's uncertainty (``toonmatte.evaluation.uncertainty``), so the queue can rank and badge items.

A stored prediction (``predict --for-studio``, loaded with ``--predictions DIR``) is used only when
the image's sha256 and the running model's version both match it: a newer model, or an edited image,
is predicted again.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from annotate.engine import Engine
from annotate.queue import Prediction, QueueItem
from toonmatte.evaluation.uncertainty import uncertainty
from toonmatte.imaging.imageio import load_image, load_mask
from toonmatte.preannotate import StoredPrediction


def predictor(engine: Engine, stored: dict[str, StoredPrediction] | None = None) -> Callable[[QueueItem], Prediction]:
    """A queue predictor over ``engine`` that prefers matching ``stored`` predictions (sha256 -> prediction)."""
    def predict(item: QueueItem) -> Prediction:
        if stored:
            digest = item.digest()
            hit, matter = stored.get(digest), engine.get()
            if hit is not None and hit.version == matter.version:
                image = load_image(item.path, background=matter.background, label=item.path.name).rgb
                alpha = load_mask(hit.alpha, image.shape[:2], label=hit.alpha.name)
                return Prediction(item.stem, item.path, image, alpha, hit.model, hit.version, digest,
                                  hit.uncertainty, hit.made_at)
        prediction = engine.predict_item(item)
        return replace(prediction, uncertainty=uncertainty(prediction.alpha))
    return predict
