"""Changed regions of a matte edit, and foreground colours recomputed only around them."""
from __future__ import annotations

import numpy as np

from annotate.incremental import FOREGROUND_REACH, changed_boxes, update_foreground
from conftest import draw_toon
from toonmatte.imaging.foreground import estimate_foreground


def covered(boxes: list, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for box in boxes:
        mask[box] = True
    return mask


def test_changed_boxes_cover_changes_with_margin_and_keep_far_ones_apart() -> None:
    before = np.zeros((300, 400), np.uint8)
    assert changed_boxes(before, before.copy()) == []
    after = before.copy()
    after[10:20, 30:50] = 255
    after[250:260, 350:390] = 128
    boxes = changed_boxes(before, after)
    assert boxes == [(slice(10, 20), slice(30, 50)), (slice(250, 260), slice(350, 390))]  # tight, apart
    grown = changed_boxes(before, after, margin=15)
    assert grown[0] == (slice(0, 35), slice(15, 65))  # grown and clipped at the border
    assert covered(grown, before.shape).sum() < before.size // 4
    assert len(changed_boxes(before, after, margin=200)) == 1  # margins that would overlap: one box


def test_changed_boxes_on_odd_sizes_and_colour() -> None:
    before = np.zeros((45, 70, 3), np.uint8)
    after = before.copy()
    after[44, 69, 2] = 1
    assert changed_boxes(before, after) == [(slice(44, 45), slice(69, 70))]


def test_update_foreground_matches_a_full_estimate() -> None:
    rgb, alpha = draw_toon(300, 260, seed=3)
    previous = estimate_foreground(rgb, alpha)
    edited = alpha.copy()
    edited[5:25, 5:40] = 255  # near the border
    edited[150:170, 120:140] = 0  # inside the character
    updated = update_foreground(rgb, edited, previous, alpha)
    full = estimate_foreground(rgb, edited)
    assert np.abs(updated.astype(int) - full).max() <= 1
    far = ~covered(changed_boxes(alpha, edited, FOREGROUND_REACH), alpha.shape)
    assert np.array_equal(updated[far], previous[far])  # nothing recomputed away from the edits
    assert update_foreground(rgb, alpha, previous, alpha) is previous


def test_update_foreground_of_a_change_everywhere_is_a_full_estimate() -> None:
    rgb, alpha = draw_toon(120, 100, seed=5)
    inverted = 255 - alpha
    assert np.array_equal(update_foreground(rgb, inverted, estimate_foreground(rgb, alpha), alpha),
                          estimate_foreground(rgb, inverted))
