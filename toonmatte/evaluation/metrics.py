"""ToonOut's evaluation metrics for one predicted alpha matte against its ground truth.

Inputs are 8-bit single-channel arrays of the same shape (``pred``: the model's alpha,
``gt``: the corrected alpha). S-measure, E-measure, F-measure, weighted F-measure, MAE and
HCE come from ``pysodmetrics`` (called with ``normalize=False`` so that the prediction is
*not* min-max stretched); ToonOut's Pixel Accuracy, IoU and boundary IoU are computed here.

Every metric gives a perfect score to a prediction identical to the ground truth, soft or
not. ToonOut feeds pysodmetrics the binarized ground truth ``gt > 128`` but the prediction
as it is (``pred / 255``), so a soft ground truth (anti-aliased edges) was scored against
its own binarization: identical files gave MAE > 0 and S, E, F, weighted F < 1. Here the
prediction gets the same per-pixel move as the ground truth (see :func:`_sod_inputs`); with
a binary ground truth (only 0 and 255) nothing moves and the pysodmetrics metrics are exactly
ToonOut's. E- and F-measure also leave out pysodmetrics' threshold 0, and E-measure divides
by the pixel count (see :func:`_e_measure`, :func:`_f_measure`).

Empty ground truth (no pixel > 128) never divides by zero; each metric's doc says what it
returns then.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from types import ModuleType

import cv2
import numpy as np

from toonmatte.errors import ToonmatteError

METRIC_KEYS: tuple[str, ...] = (
    "pixel_accuracy", "mae", "s_measure", "e_measure", "f_measure", "weighted_f", "iou", "boundary_iou",
)
"""The metrics :func:`image_metrics` always returns; ``hce`` is added on request."""

LOWER_IS_BETTER: frozenset[str] = frozenset({"mae", "hce"})

WRONG_TOLERANCE = 10
"""Pixel Accuracy: a pixel is wrong where ``|pred - gt| > WRONG_TOLERANCE`` (8-bit levels)."""

BOUNDARY_DILATION_RATIO = 0.02
"""Boundary IoU: band width as a fraction of the image diagonal (Cheng et al., CVPR 2021)."""


def _sod() -> ModuleType:
    """``py_sod_metrics``, imported on first use: it imports scikit-learn, slow to import, which the
    studio does not need in order to start."""
    import py_sod_metrics

    return py_sod_metrics


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.dtype != np.uint8 or gt.dtype != np.uint8 or pred.ndim != 2 or gt.ndim != 2:
        raise ValueError(f"expected two uint8 HxW alphas, got {pred.dtype} {pred.shape} and {gt.dtype} {gt.shape}")
    if pred.shape != gt.shape:
        raise ValueError(f"prediction is {pred.shape} but ground truth is {gt.shape}")
    return pred, gt


def pixel_accuracy(pred: np.ndarray, gt: np.ndarray) -> float:
    """ToonOut's Pixel Accuracy (the 95.3% -> 99.5% headline) for one image, in [0, 1].

    A pixel is wrong where ``|pred - gt| > 10``; the wrong-pixel map is eroded once with a
    5x5 kernel of ones (OpenCV's default border: pixels outside the image never erode a
    wrong pixel away), which forgives thin errors along edges; with ``x = #wrong_after /
    #(gt > 128)`` the score is ``(1 - x)^2``.

    Two cases ToonOut's formula leaves open, decided here:
    - ``x`` is clipped to [0, 1] before squaring, so more wrong pixels than foreground pixels
      scores 0 instead of growing again.
    - Empty foreground (no ``gt > 128``): 1.0 when no wrong pixel survives the erosion,
      otherwise 0.0 (any error is unbounded relative to an empty foreground; this is also
      what the clipping gives with a denominator of 1).
    """
    pred, gt = _check_pair(pred, gt)
    wrong: np.ndarray = (np.abs(pred.astype(np.int16) - gt.astype(np.int16)) > WRONG_TOLERANCE).astype(np.uint8)
    wrong = cv2.erode(wrong, np.ones((5, 5), np.uint8), iterations=1)
    n_wrong = int(np.count_nonzero(wrong))
    n_foreground = int(np.count_nonzero(gt > 128))
    x = min(1.0, n_wrong / max(n_foreground, 1))
    return (1.0 - x) ** 2


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union of ``pred > 128`` and ``gt > 128``; 1.0 when both are empty."""
    pred, gt = _check_pair(pred, gt)
    return _binary_iou(pred > 128, gt > 128)


def boundary_iou(pred: np.ndarray, gt: np.ndarray, dilation_ratio: float = BOUNDARY_DILATION_RATIO) -> float:
    """Boundary IoU (Cheng et al., CVPR 2021) of ``pred > 128`` and ``gt > 128``.

    Each mask's boundary band is the mask minus its erosion by ``d = max(1, round(ratio *
    diagonal))`` pixels (a (2d+1)x(2d+1) square), with the outside of the image counted as
    background so that masks cut by the image border have a boundary there too. The score
    is the IoU of the two bands; 1.0 when both are empty.
    """
    pred, gt = _check_pair(pred, gt)
    h, w = gt.shape
    d = max(1, round(dilation_ratio * math.hypot(h, w)))
    return _binary_iou(_boundary_band(pred > 128, d), _boundary_band(gt > 128, d))


def _boundary_band(mask: np.ndarray, d: int) -> np.ndarray:
    kernel = np.ones((2 * d + 1, 2 * d + 1), np.uint8)
    inner = cv2.erode(mask.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return mask & (inner == 0)


def _binary_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int(np.count_nonzero(a | b))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(a & b)) / union


def _sod_inputs(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pair pysodmetrics scores (``normalize=False``): a [0, 1] prediction and ToonOut's binarized gt.

    ToonOut binarizes the ground truth (``gt > 128``), which moves each soft pixel to 0 or 255,
    and used the prediction as ``pred / 255``. The prediction here gets the same per-pixel move
    as the ground truth, in 8-bit levels: ``clip(pred + (255 * (gt > 128) - gt), 0, 255) / 255``.
    So an identical prediction becomes exactly the binarized gt (perfect scores), a binary gt
    (0/255) moves nothing (ToonOut's ``pred / 255``), and at a soft gt pixel the error is the
    distance from ``pred`` to the interval between ``gt`` and its binarization: matching the
    annotated soft value and matching ToonOut's binary target both count as correct.
    """
    binary = gt > 128
    moved = pred.astype(np.int16) + np.where(binary, 255, 0).astype(np.int16) - gt.astype(np.int16)
    # integer levels first: (level / 255) * 255 truncates back to the same level, as pysodmetrics' histograms need
    return np.clip(moved, 0, 255).astype(np.float64) / 255.0, binary


def mae(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute error between the prediction and the binarized ground truth (see :func:`_sod_inputs`):
    ToonOut's ``mean |pred / 255 - (gt > 128)|`` for a binary gt, 0 for an identical prediction."""
    return _mae(*_sod_inputs(*_check_pair(pred, gt)))


def _mae(p: np.ndarray, g: np.ndarray) -> float:
    evaluator = _sod().MAE()
    evaluator.step(p, g, normalize=False)
    return float(evaluator.get_results()["mae"])


def _s_measure(p: np.ndarray, g: np.ndarray) -> float:
    evaluator = _sod().Smeasure(alpha=0.5)
    evaluator.step(p, g, normalize=False)
    return float(evaluator.get_results()["sm"])


def _e_measure(p: np.ndarray, g: np.ndarray) -> float:
    """Mean E-measure over the 255 thresholds ``pred >= t/255``, t = 1..255.

    Two departures from pysodmetrics (and the MATLAB original), both so that a perfect
    prediction scores 1: its curve also has t = 0, where every pixel is foreground whatever
    the prediction (a value that depends on the gt alone and is below 1 unless the gt is all
    foreground); and it divides the enhanced-alignment sum by ``#pixels - 1 + eps``, which
    scores a perfect prediction ``n / (n - 1) > 1``; the sum is divided by ``n`` here.
    """
    evaluator = _sod().Emeasure()
    evaluator.step(p, g, normalize=False)
    curve = np.asarray(evaluator.get_results()["em"]["curve"], np.float64)  # pred >= 255, 254, ..., 0
    n = g.size
    from py_sod_metrics.utils import EPS

    return float(np.mean(curve[:-1]) * (n - 1 + EPS) / n)


def _f_measure(p: np.ndarray, g: np.ndarray) -> float:
    """Mean F-measure (beta^2 = 0.3) over the 255 thresholds ``pred >= t/255``, t = 1..255.

    pysodmetrics' threshold t = 0 (every pixel foreground, whatever the prediction) is left
    out, as for :func:`_e_measure`. Empty ground truth: precision and recall are 0/0, so each
    threshold scores 1 when the binarized prediction is empty too and 0 otherwise (the
    convention of :func:`iou`; pysodmetrics gives 0).
    """
    if not g.any():
        levels = np.round(p * 255).astype(np.int64)
        return float(np.mean(np.arange(1, 256) > levels.max()))
    evaluator = _sod().FmeasureV2({"fm": _sod().FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3)})
    evaluator.step(p, g, normalize=False)
    return float(np.mean(np.asarray(evaluator.get_results()["fm"]["dynamic"])[:-1]))  # pred >= 255, ..., 1 (not 0)


def _weighted_f(p: np.ndarray, g: np.ndarray) -> float:
    """Weighted F-measure (Margolin et al., beta^2 = 1). Empty ground truth: 1 when the prediction is all 0 too,
    otherwise 0 (pysodmetrics gives 0 in both cases; the convention of :func:`iou`)."""
    if not g.any():
        return float(not p.any())
    evaluator = _sod().WeightedFmeasure()
    evaluator.step(p, g, normalize=False)
    return float(evaluator.get_results()["wfm"])


def _hce(p: np.ndarray, g: np.ndarray) -> float:
    """Human Correction Effort (Qin et al., ECCV 2022): the number of clicks to fix the binarized prediction."""
    evaluator = _sod().HumanCorrectionEffortMeasure()
    evaluator.step(p, g, normalize=False)
    return float(evaluator.get_results()["hce"])


def image_metrics(pred: np.ndarray, gt: np.ndarray, *, hce: bool = False) -> dict[str, float]:
    """Every metric for one image: the :data:`METRIC_KEYS`, plus ``hce`` when asked.

    HCE is optional because it skeletonizes the ground truth and walks every error contour
    in Python: it takes longer than all the other metrics together, the more so the more error
    regions there are.
    """
    pred, gt = _check_pair(pred, gt)
    p, g = _sod_inputs(pred, gt)
    scores = {
        "pixel_accuracy": pixel_accuracy(pred, gt),
        "mae": _mae(p, g),
        "s_measure": _s_measure(p, g),
        "e_measure": _e_measure(p, g),
        "f_measure": _f_measure(p, g),
        "weighted_f": _weighted_f(p, g),
        "iou": iou(pred, gt),
        "boundary_iou": boundary_iou(pred, gt),
    }
    if hce:
        scores["hce"] = _hce(p, g)
    return scores


def mean_metrics(per_image: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric over images (ToonOut averages per-image scores); ``{}`` for no images.

    Only metrics present for every image are averaged.
    """
    rows = list(per_image)
    if not rows:
        return {}
    keys = [key for key in rows[0] if all(key in row for row in rows)]
    return {key: float(np.mean([row[key] for row in rows])) for key in keys}


def change_stats(before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """(fraction of pixels whose alpha changed, mean |delta alpha| over all pixels in levels 0..255)."""
    if before.shape != after.shape:
        raise ToonmatteError(f"Cannot compare mattes of sizes {before.shape} and {after.shape}.")
    if before.size == 0:
        return 0.0, 0.0
    diff = cv2.absdiff(np.ascontiguousarray(before, np.uint8), np.ascontiguousarray(after, np.uint8))
    return cv2.countNonZero(diff.reshape(diff.shape[0], -1)) / diff.size, float(cv2.sumElems(diff)[0]) / diff.size
