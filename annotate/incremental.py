"""Redo only what a matte edit changed: the changed regions, and the foreground colours near them.

A brush stroke changes the alpha in a few small regions; blur fusion (``estimate_foreground``)
is local, each output pixel depending only on inputs within ``FOREGROUND_REACH`` pixels, so the
foreground colours of an edited matte are the old ones everywhere except near the changes.
"""
from __future__ import annotations

import cv2
import numpy as np

from toonmatte.imaging.foreground import RADII, estimate_foreground

Box = tuple[slice, slice]

FOREGROUND_REACH = sum(r // 2 for r in RADII)
"""How far (pixels) a change of alpha moves blur fusion's output: each pass's box blur of size r
reaches r // 2 pixels (OpenCV centres the window), and the passes chain."""
CELL = 32
"""Changes are located on a grid of CELL x CELL pixel cells."""
FULL_SHARE = 0.6
"""Past this share of the image, recomputing crops costs more than one full pass."""


def changed_boxes(before: np.ndarray, after: np.ndarray, margin: int = 0) -> list[Box]:
    """Boxes (row and column slices) around the pixels where ``before`` and ``after`` differ, each
    grown by ``margin`` and clipped to the image; changes closer than two margins (or a few cells)
    share a box. Empty when nothing changed."""
    if before.shape != after.shape:
        raise ValueError(f"cannot compare mattes of shapes {before.shape} and {after.shape}")
    h, w = before.shape[:2]
    diff = cv2.compare(before, after, cv2.CMP_NE)
    if diff.ndim == 3:
        diff = diff.max(axis=2)
    hb, wb = -(-h // CELL), -(-w // CELL)
    if (hb * CELL, wb * CELL) != (h, w):
        diff = cv2.copyMakeBorder(diff, 0, hb * CELL - h, 0, wb * CELL - w, cv2.BORDER_CONSTANT, value=0)
    cells = diff.reshape(hb, CELL, wb * CELL).max(axis=1).reshape(hb, wb, CELL).max(axis=2)
    if not cells.any():
        return []
    reach = max(1, -(-2 * margin // CELL))
    joined = cv2.dilate(cells, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
    count, labels = cv2.connectedComponents(joined, connectivity=8)
    boxes = []
    for label in range(1, count):
        ys, xs = np.nonzero((labels == label) & (cells > 0))
        window = diff[ys.min() * CELL:(ys.max() + 1) * CELL, xs.min() * CELL:(xs.max() + 1) * CELL]
        rows = np.flatnonzero(cv2.reduce(window, 1, cv2.REDUCE_MAX).ravel()) + ys.min() * CELL
        cols = np.flatnonzero(cv2.reduce(window, 0, cv2.REDUCE_MAX).ravel()) + xs.min() * CELL
        boxes.append((slice(int(max(rows[0] - margin, 0)), int(min(rows[-1] + 1 + margin, h))),
                      slice(int(max(cols[0] - margin, 0)), int(min(cols[-1] + 1 + margin, w)))))
    return boxes


def _grow(box: Box, by: int, shape: tuple[int, ...]) -> Box:
    return (slice(max(box[0].start - by, 0), min(box[0].stop + by, shape[0])),
            slice(max(box[1].start - by, 0), min(box[1].stop + by, shape[1])))


def update_foreground(image: np.ndarray, alpha: np.ndarray, previous: np.ndarray,
                      previous_alpha: np.ndarray) -> np.ndarray:
    """``estimate_foreground(image, alpha)`` given ``previous`` = ``estimate_foreground(image, previous_alpha)``,
    recomputed only around the pixels where the alphas differ (a new array).

    Matches a full recomputation to within one level (OpenCV's running box sums round a little
    differently when they start at a crop's edge).
    """
    boxes = changed_boxes(previous_alpha, alpha, FOREGROUND_REACH)
    if not boxes:
        return previous
    crops = [_grow(box, FOREGROUND_REACH, alpha.shape) for box in boxes]
    area = sum((c[0].stop - c[0].start) * (c[1].stop - c[1].start) for c in crops)
    if area > FULL_SHARE * alpha.size:
        return estimate_foreground(image, alpha)
    out = previous.copy()
    for box, crop in zip(boxes, crops):
        colours = estimate_foreground(image[crop], alpha[crop])
        inner = (slice(box[0].start - crop[0].start, box[0].stop - crop[0].start),
                 slice(box[1].start - crop[1].start, box[1].stop - crop[1].start))
        out[box] = colours[inner]
    return out
