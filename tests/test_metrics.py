"""Metric values against small hand-computed cases."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from toonmatte import metrics
from toonmatte.metrics import boundary_iou, image_metrics, iou, mae, mean_metrics, pixel_accuracy


def block(shape: tuple[int, int], rows: slice, cols: slice, value: int = 255) -> np.ndarray:
    image = np.zeros(shape, np.uint8)
    image[rows, cols] = value
    return image


GT = block((20, 20), slice(5, 15), slice(5, 15))  # 100 foreground pixels


def test_perfect_prediction_scores_one(toon):
    _, alpha = toon
    assert pixel_accuracy(alpha, alpha) == 1.0
    assert iou(alpha, alpha) == 1.0
    assert boundary_iou(alpha, alpha) == 1.0
    scores = image_metrics(GT, GT)
    assert scores["mae"] == 0.0
    assert scores["pixel_accuracy"] == scores["iou"] == scores["boundary_iou"] == scores["weighted_f"] == 1.0
    assert scores["s_measure"] == pytest.approx(1.0)


def test_pixel_accuracy_tolerance_is_strictly_more_than_ten_levels():
    within = GT.copy()
    within[GT == 0] = 10  # |diff| == 10 everywhere outside: not wrong
    assert pixel_accuracy(within, GT) == 1.0
    beyond = GT.copy()
    beyond[GT == 0] = 11  # 300 wrong background pixels, most survive the erosion
    assert pixel_accuracy(beyond, GT) == 0.0  # more wrong than foreground pixels: clipped, not squared back up


def test_pixel_accuracy_erosion_forgives_blobs_thinner_than_five():
    pred = GT.copy()
    pred[6:10, 6:10] = 0  # a 4x4 hole: nothing survives a 5x5 erosion
    assert pixel_accuracy(pred, GT) == 1.0


def test_pixel_accuracy_erosion_then_squaring():
    pred = GT.copy()
    pred[6:11, 6:11] = 0  # a 5x5 hole: only its centre survives the erosion
    assert pixel_accuracy(pred, GT) == pytest.approx((1 - 1 / 100) ** 2)
    pred = GT.copy()
    pred[6:11, 6:12] = 0  # 5x6: two survive
    assert pixel_accuracy(pred, GT) == pytest.approx((1 - 2 / 100) ** 2)


def test_pixel_accuracy_outside_the_image_does_not_erode_errors():
    pred = GT.copy()
    pred[0:3, 0:3] = 255  # a 3x3 error in the corner: only the corner pixel sees no correct pixel in its window
    assert pixel_accuracy(pred, GT) == pytest.approx((1 - 1 / 100) ** 2)


def test_pixel_accuracy_empty_foreground():
    empty = np.zeros((20, 20), np.uint8)
    assert pixel_accuracy(empty, empty) == 1.0
    assert pixel_accuracy(block((20, 20), slice(2, 6), slice(2, 6)), empty) == 1.0  # eroded away
    assert pixel_accuracy(block((20, 20), slice(2, 8), slice(2, 8)), empty) == 0.0  # 4 pixels survive


def test_pixel_accuracy_counts_foreground_above_128_only():
    gt = GT.copy()
    gt[5:15, 5:10] = 128  # half the block is not foreground: 50 foreground pixels
    pred = gt.copy()
    pred[6:11, 10:15] = 0  # one surviving wrong pixel
    assert pixel_accuracy(pred, gt) == pytest.approx((1 - 1 / 50) ** 2)


def test_iou_by_hand():
    shifted = block((20, 20), slice(5, 15), slice(10, 20))
    assert iou(shifted, GT) == pytest.approx(50 / 150)
    assert iou(np.where(GT > 0, 128, 0).astype(np.uint8), GT) == 0.0  # 128 is not foreground
    empty = np.zeros_like(GT)
    assert iou(empty, empty) == 1.0
    assert iou(empty, GT) == 0.0


def test_boundary_iou_by_hand():
    # 10x10 image: d = max(1, round(0.02 * 14.1)) = 1, so each band is a one-pixel ring.
    gt = block((10, 10), slice(2, 8), slice(2, 8))  # ring of 20 pixels
    pred = block((10, 10), slice(2, 8), slice(2, 9))  # ring of 22 pixels, 16 shared with gt's
    assert boundary_iou(pred, gt) == pytest.approx(16 / 26)
    assert iou(pred, gt) == pytest.approx(36 / 42)


def test_boundary_iou_counts_the_image_border_as_boundary():
    full = np.full((10, 10), 255, np.uint8)  # band: the outer ring, 36 pixels
    left = block((10, 10), slice(0, 10), slice(0, 5))  # band: 50 - 24 = 26 pixels, 18 on the ring
    assert boundary_iou(left, full) == pytest.approx(18 / 44)


def test_boundary_band_width_follows_the_diagonal():
    mask = block((100, 100), slice(30, 70), slice(30, 70)) > 128
    # d = round(0.02 * 141.4) = 3: the band is 40^2 - 34^2 pixels
    assert int(metrics._boundary_band(mask, 3).sum()) == 40 * 40 - 34 * 34
    eroded_deeper = mask.copy()
    eroded_deeper[34:66, 34:66] = False  # a hole deeper than the band makes a new inner band
    assert boundary_iou(eroded_deeper.astype(np.uint8) * 255, mask.astype(np.uint8) * 255) < 1.0


def test_mae_uses_binarized_gt_and_unstretched_prediction():
    half = block((10, 10), slice(0, 10), slice(0, 5))
    assert mae(np.full((10, 10), 128, np.uint8), half) == pytest.approx(0.5 * 128 / 255 + 0.5 * 127 / 255)
    soft = np.full((10, 10), 200, np.uint8)
    assert mae(soft, soft) == pytest.approx(55 / 255)  # gt 200 counts as 1
    faint = block((10, 10), slice(0, 10), slice(0, 5), value=100)
    assert mae(faint, np.zeros((10, 10), np.uint8)) == pytest.approx(0.5 * 100 / 255)  # not min-max stretched


def test_image_metrics_keys_and_optional_hce():
    pred = GT.copy()
    pred[0:4, 0:4] = 255
    scores = image_metrics(pred, GT)
    assert tuple(scores) == metrics.METRIC_KEYS
    assert all(0.0 <= value <= 1.0 for value in scores.values())
    big = np.zeros((60, 60), np.uint8)
    big[5:25, 5:25] = 255
    extra = big.copy()
    extra[35:55, 35:55] = 255  # a false-positive region too large for HCE's relaxation to forgive
    assert image_metrics(extra, big, hce=True)["hce"] > 0
    assert image_metrics(GT, GT, hce=True)["hce"] == 0


def test_empty_foreground_gives_finite_scores():
    empty = np.zeros((16, 16), np.uint8)
    scores = image_metrics(empty, empty, hce=True)
    assert all(np.isfinite(value) for value in scores.values())
    assert scores["pixel_accuracy"] == scores["iou"] == scores["boundary_iou"] == 1.0
    assert scores["mae"] == 0.0


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="ground truth"):
        pixel_accuracy(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        iou(np.zeros((4, 4), np.float32), np.zeros((4, 4), np.uint8))


def test_mean_metrics():
    rows = [{"iou": 1.0, "mae": 0.0, "hce": 4.0}, {"iou": 0.5, "mae": 0.2}]
    assert mean_metrics(rows) == pytest.approx({"iou": 0.75, "mae": 0.1})
    assert mean_metrics([]) == {}


def test_importing_the_studio_does_not_import_scikit_learn():
    # py_sod_metrics imports scikit-learn (~1.5 s); the studio must start without it (issue 5: start < 5 s)
    code = "import sys, annotate.ui; sys.exit(int('sklearn' in sys.modules or 'py_sod_metrics' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=120).returncode == 0
