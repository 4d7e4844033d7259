"""Metric values against small hand-computed cases."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import py_sod_metrics
import pytest

from conftest import REPO, draw_toon
from toonmatte.errors import ToonmatteError
from toonmatte.evaluation import metrics
from toonmatte.evaluation.metrics import (
    boundary_iou,
    change_stats,
    image_metrics,
    iou,
    mae,
    mean_metrics,
    pixel_accuracy,
)


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
    faint = block((10, 10), slice(0, 10), slice(0, 5), value=100)
    assert mae(faint, np.zeros((10, 10), np.uint8)) == pytest.approx(0.5 * 100 / 255)  # not min-max stretched


@pytest.mark.parametrize("gt_level, pred_level, error", [
    (200, 200, 0), (200, 230, 0), (200, 255, 0), (200, 150, 50), (200, 0, 200),  # gt 200 is foreground
    (100, 100, 0), (100, 40, 0), (100, 0, 0), (100, 150, 50), (100, 255, 155),  # gt 100 is background
])
def test_mae_at_a_soft_gt_pixel_is_the_distance_to_the_span_from_gt_to_its_binarization(gt_level, pred_level, error):
    gt = np.full((4, 4), gt_level, np.uint8)
    assert mae(np.full((4, 4), pred_level, np.uint8), gt) == pytest.approx(error / 255)


# ---------------------------------------------------------------------------------------- identical inputs
def _toon_alpha() -> np.ndarray:
    return draw_toon(96, 80, seed=2)[1]


def _ramp() -> np.ndarray:
    """A soft matte whose values span 40..200 only: never 0, never 255."""
    y, x = np.mgrid[0:64, 0:64]
    return (40 + 160 * np.hypot(y - 32, x - 32) / np.hypot(32, 32)).round().clip(40, 200).astype(np.uint8)


IDENTICAL = {
    "soft toon": _toon_alpha,
    "binary toon": lambda: np.where(_toon_alpha() > 128, 255, 0).astype(np.uint8),
    "toon never reaching 255": lambda: (_toon_alpha().astype(np.float64) * 200 / 255).round().astype(np.uint8),
    "soft ramp 40..200": _ramp,
    "all 0": lambda: np.zeros((32, 48), np.uint8),
    "all 255": lambda: np.full((32, 48), 255, np.uint8),
    "all 100 (no foreground)": lambda: np.full((32, 48), 100, np.uint8),
    "all 200 (all foreground)": lambda: np.full((32, 48), 200, np.uint8),
}


@pytest.mark.parametrize("name", list(IDENTICAL))
def test_identical_inputs_score_perfectly_on_every_metric(name):
    alpha = IDENTICAL[name]()
    scores = image_metrics(alpha, alpha.copy(), hce=True)
    assert set(scores) == set(metrics.METRIC_KEYS) | {"hce"}
    for key, value in scores.items():
        if key in metrics.LOWER_IS_BETTER:
            assert value == 0.0, key
        else:
            assert value == pytest.approx(1.0, abs=1e-12), key
    assert mae(alpha, alpha) == 0.0 and pixel_accuracy(alpha, alpha) == iou(alpha, alpha) == 1.0


def _toonout_inputs(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ToonOut's conversion as birefnet.md states it: gt > 128 but pred / 255 (pysodmetrics normalize=False)."""
    return pred / 255.0, gt > 128


def _sod(evaluator, pred: np.ndarray, gt: np.ndarray):
    evaluator.step(*_toonout_inputs(pred, gt), normalize=False)
    return evaluator.get_results()


def test_the_cause_toonout_binarizes_the_gt_but_not_the_prediction():
    """The bug: fed as ToonOut feeds them, identical soft mattes score as if the gt's anti-aliasing were an error."""
    alpha = _toon_alpha()
    soft = np.count_nonzero((alpha > 0) & (alpha < 255))
    assert soft > 0
    assert _sod(py_sod_metrics.MAE(), alpha, alpha)["mae"] > 0
    assert _sod(py_sod_metrics.Smeasure(), alpha, alpha)["sm"] < 0.999
    assert _sod(py_sod_metrics.WeightedFmeasure(), alpha, alpha)["wfm"] < 0.999
    # what the MAE was: the soft pixels' distance to their own binarization
    expected = np.abs(alpha / 255.0 - (alpha > 128)).mean()
    assert _sod(py_sod_metrics.MAE(), alpha, alpha)["mae"] == pytest.approx(expected)
    # the conversion used now moves an identical prediction exactly onto the binarized gt
    p, g = metrics._sod_inputs(alpha, alpha)
    assert np.array_equal(p, g.astype(np.float64))


def _damaged(gt: np.ndarray) -> np.ndarray:
    pred = gt.copy()
    pred[:20, :20] = 255  # false positive
    pred[40:60, 30:50] //= 3  # a faded patch
    pred[70:, :] = np.roll(pred[70:, :], 3, axis=1)  # a shifted edge
    return pred


def test_binary_gt_keeps_toonout_values_with_pysodmetrics_as_the_oracle():
    gt = np.where(_toon_alpha() > 128, 255, 0).astype(np.uint8)
    pred = _damaged(_toon_alpha())  # a soft prediction
    scores = image_metrics(pred, gt, hce=True)
    assert scores["mae"] == pytest.approx(_sod(py_sod_metrics.MAE(), pred, gt)["mae"])
    assert scores["s_measure"] == pytest.approx(_sod(py_sod_metrics.Smeasure(alpha=0.5), pred, gt)["sm"])
    assert scores["weighted_f"] == pytest.approx(_sod(py_sod_metrics.WeightedFmeasure(), pred, gt)["wfm"])
    assert scores["hce"] == pytest.approx(_sod(py_sod_metrics.HumanCorrectionEffortMeasure(), pred, gt)["hce"])
    n = gt.size
    em_curve = _sod(py_sod_metrics.Emeasure(), pred, gt)["em"]["curve"]  # thresholds 255, 254, ..., 0
    assert scores["e_measure"] == pytest.approx(np.mean(em_curve[:-1]) * (n - 1 + py_sod_metrics.utils.EPS) / n)
    fm = py_sod_metrics.FmeasureV2({"fm": py_sod_metrics.FmeasureHandler(with_dynamic=True, with_adaptive=False,
                                                                         beta=0.3)})
    fm_curve = _sod(fm, pred, gt)["fm"]["dynamic"]
    assert scores["f_measure"] == pytest.approx(np.mean(fm_curve[:-1]))
    assert scores["pixel_accuracy"] < 1 and scores["mae"] > 0


def test_why_e_and_f_leave_out_threshold_zero_and_e_divides_by_n():
    """The two departures from pysodmetrics' mean E/F curves, shown: its last threshold (pred >= 0) does not
    look at the prediction, and it scores a perfect prediction above 1."""
    gt = np.where(_toon_alpha() > 128, 255, 0).astype(np.uint8)
    other = _damaged(_toon_alpha())
    em = [_sod(py_sod_metrics.Emeasure(), pred, gt)["em"]["curve"] for pred in (gt, other)]
    assert em[0][-1] == em[1][-1] < 0.9  # the same for any prediction of this gt
    assert np.mean(em[0]) < 1  # so a perfect prediction's mean over all 256 thresholds is < 1
    assert em[0][0] > 1  # and at a real threshold pysodmetrics gives it n / (n - 1)
    assert em[0][0] == pytest.approx(gt.size / (gt.size - 1))
    handler = lambda: py_sod_metrics.FmeasureV2(  # noqa: E731
        {"fm": py_sod_metrics.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3)})
    fm = [_sod(handler(), pred, gt)["fm"]["dynamic"] for pred in (gt, other)]
    assert fm[0][-1] == fm[1][-1] < 0.9 and np.mean(fm[0]) < 1
    assert np.all(fm[0][:-1] == pytest.approx(1.0))
    full = np.full((16, 16), 255, np.uint8)
    assert np.mean(_sod(py_sod_metrics.Emeasure(), full, full)["em"]["curve"]) > 1  # E above 1 for all-255
    assert image_metrics(full, full)["e_measure"] == pytest.approx(1.0)


def test_soft_gt_differs_from_toonout_only_at_soft_gt_pixels():
    gt = _toon_alpha()
    pred = _damaged(gt)
    hard = (gt == 0) | (gt == 255)
    p, g = metrics._sod_inputs(pred, gt)
    toonout_p, toonout_g = _toonout_inputs(pred, gt)
    assert np.array_equal(g, toonout_g)
    assert np.array_equal(p[hard], toonout_p[hard])
    # at soft gt pixels the error can only shrink: 0 anywhere between gt and its binarization
    assert np.all(np.abs(p - g)[~hard] <= np.abs(toonout_p - toonout_g)[~hard] + 1e-12)
    assert mae(pred, gt) <= _sod(py_sod_metrics.MAE(), pred, gt)["mae"]


def test_empty_gt_f_and_weighted_f_follow_the_iou_convention():
    empty = np.zeros((16, 16), np.uint8)
    speck = block((16, 16), slice(0, 4), slice(0, 4), value=100)  # soft values up to 100: empty above threshold 100
    assert iou(empty, empty) == 1.0 and image_metrics(empty, empty)["f_measure"] == 1.0
    assert image_metrics(speck, empty)["f_measure"] == pytest.approx(155 / 255)
    assert image_metrics(speck, empty)["weighted_f"] == 0.0 and image_metrics(empty, empty)["weighted_f"] == 1.0


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
    code = "import sys, annotate.web.ui; sys.exit(int('sklearn' in sys.modules or 'py_sod_metrics' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=120).returncode == 0


def test_change_stats():
    before = np.zeros((10, 10), np.uint8)
    after = before.copy()
    after[0, :5] = 200
    after[1, 0] = 10
    fraction, mean = change_stats(before, after)
    assert fraction == pytest.approx(0.06) and mean == pytest.approx(10.1)
    assert change_stats(after, after) == (0.0, 0.0)
    with pytest.raises(ToonmatteError):
        change_stats(before, before[:5])
