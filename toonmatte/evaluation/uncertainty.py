"""How unsure a predicted matte looks, from the matte alone: a score per image for ranking work.

Three signs that a person will have to fix a matte, each in [0, 1]:

- ``soft``: the share of the matte's subject area whose alpha is neither near 0 nor near 255.
  ToonOut's mattes of flat anime art are nearly binary; wide soft regions are where it hesitated.
- ``fragments``: the share of the subject area in parts beside its largest connected one, plus a step
  for each extra part and each small hole the subject surrounds. Characters are mostly one piece; stray
  islands and pinholes are typical mistakes. Dust (pieces under ``MIN_PIECE`` of the area) is too small
  to count, and a large hole is a gap in the pose (between an arm and the body), not a mistake.
- ``flip``: the mean disagreement between the prediction and the prediction of the mirrored image
  (mirrored back), over the area either calls subject. A model sure of itself is symmetric; this
  costs a second forward pass, so it is optional.

``score`` mixes them with ``WEIGHTS``; ``docs/performance.md`` has the measurement that chose them
(``python -m toonmatte evaluate --uncertainty``: the Spearman correlation between the score and how
much people changed each item, and how many of the most-changed 20 % the top 20 % by score find).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

LOW, HIGH = 25, 230
"""Alpha levels counted as "near 0" (<= LOW) and "near 255" (>= HIGH)."""
EDGE = 2
"""A soft pixel within this many pixels of both a near-0 and a near-255 one is an ordinary edge."""
FRAGMENT_WEIGHT = 0.05
"""What each extra part of the subject, and each small hole in it, adds to ``fragments``."""
MIN_PIECE = 1e-4
"""Parts and holes smaller than this share of the subject's area (and than 2 pixels) are dust: not counted."""
GAP = 0.01
"""Holes of at least this share of the subject's area are gaps in the pose: not counted."""
WEIGHTS = {"soft": 1.0, "fragments": 1.0, "flip": 1.0}
"""Equal weights: soft and fragments catch different mistakes (noisy rims; islands and holes), and their
mean ranks best on the mistakes a matte can show (docs/performance.md). ``flip`` is not measured yet."""
BANDS = (0.03, 0.15)
"""Score limits of the badges: below the first "probably fine", below the second "look", else "likely wrong"."""


@dataclass(frozen=True)
class Uncertainty:
    soft: float
    fragments: float
    flip: float | None = None

    @property
    def score(self) -> float:
        parts = {"soft": self.soft, "fragments": self.fragments, "flip": self.flip}
        used = {name: value for name, value in parts.items() if value is not None}
        return sum(WEIGHTS[name] * value for name, value in used.items()) / sum(WEIGHTS[name] for name in used)

    @property
    def badge(self) -> str:
        score = self.score
        return "probably fine" if score < BANDS[0] else "look" if score < BANDS[1] else "likely wrong"


def _soft_share(alpha: np.ndarray) -> float:
    subject = np.count_nonzero(alpha > LOW)
    if subject == 0:
        return 1.0  # nothing found at all: a person must look
    kernel = np.ones((2 * EDGE + 1, 2 * EDGE + 1), np.uint8)
    near_subject = cv2.dilate((alpha >= HIGH).astype(np.uint8), kernel) > 0
    near_background = cv2.dilate((alpha <= LOW).astype(np.uint8), kernel) > 0
    edge = near_subject & near_background  # anti-aliasing between the two: soft by nature, and narrow
    soft = np.count_nonzero((alpha > LOW) & (alpha < HIGH) & ~edge)
    return soft / subject


def _fragment_share(alpha: np.ndarray) -> float:
    mask = (alpha > 127).astype(np.uint8)
    area = int(mask.sum())
    if area == 0:
        return 1.0
    _, _, parts, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    sizes = np.sort(parts[1:, cv2.CC_STAT_AREA])
    dust = max(2.0, MIN_PIECE * area)
    strays = sizes[:-1][sizes[:-1] >= dust]  # parts beside the largest
    count, labels, gaps, _ = cv2.connectedComponentsWithStats(1 - mask, connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    enclosed = np.setdiff1d(np.arange(1, count), border)  # background parts the subject surrounds
    holes = gaps[enclosed, cv2.CC_STAT_AREA]
    pieces = len(strays) + np.count_nonzero((holes >= dust) & (holes < GAP * area))
    return min(1.0, float(strays.sum()) / area + FRAGMENT_WEIGHT * pieces)


def _flip_disagreement(alpha: np.ndarray, flipped: np.ndarray) -> float:
    back = flipped[:, ::-1]
    either = (alpha > LOW) | (back > LOW)
    if not either.any():
        return 0.0
    delta = np.abs(alpha.astype(np.int16) - back.astype(np.int16))[either]
    return float(delta.mean()) / 255.0


def uncertainty(alpha: np.ndarray, flipped: np.ndarray | None = None) -> Uncertainty:
    """The uncertainty of a uint8 matte; ``flipped`` is the matte predicted for the mirrored image
    (as predicted, not mirrored back), when a second pass was run."""
    if alpha.dtype != np.uint8 or alpha.ndim != 2:
        raise ValueError(f"uncertainty needs a uint8 HxW matte, got {alpha.dtype} {alpha.shape}")
    return Uncertainty(_soft_share(alpha), _fragment_share(alpha),
                       None if flipped is None else _flip_disagreement(alpha, flipped))


def ranking_quality(scores: np.ndarray, changes: np.ndarray, top: float = 0.2) -> tuple[float, float]:
    """How well ``scores`` rank items by how much people changed them: (Spearman's rho, the share of
    the most-changed ``top`` fraction found in the ``top`` fraction by score)."""
    from scipy.stats import spearmanr

    scores, changes = np.asarray(scores, np.float64), np.asarray(changes, np.float64)
    if len(scores) < 3:
        raise ValueError("ranking quality needs at least 3 items")
    rho = spearmanr(scores, changes).statistic
    k = max(1, int(round(top * len(scores))))
    most_changed = set(np.argsort(-changes, kind="stable")[:k].tolist())
    most_unsure = set(np.argsort(-scores, kind="stable")[:k].tolist())
    return float(0.0 if np.isnan(rho) else rho), len(most_changed & most_unsure) / k
