"""toonmatte.imaging.fallback: the classical matte on drawn toons (in memory and a JPEG file), degenerate inputs, and
the drawn categories of benchmarks.fallback_cases against the naive baseline of benchmarks.fallback_baseline."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from benchmarks.fallback_baseline import baseline_alpha
from benchmarks.fallback_cases import CATEGORIES, floor_shadow, make_case
from conftest import FIXTURES, draw_toon
from toonmatte.errors import BadImageError
from toonmatte.evaluation import metrics
from toonmatte.imaging.fallback import fallback_alpha


def iou(pred: np.ndarray, true: np.ndarray) -> float:
    p, t = pred > 127, true > 127
    return (p & t).sum() / (p | t).sum()


def outline(alpha: np.ndarray) -> np.ndarray:
    """Pixels on the true anti-aliased edge."""
    return (alpha > 0) & (alpha < 255)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("background", [97, 140, 180, 218])
def test_toon_on_plain_gray(seed, background):
    rgb, true = draw_toon(200, 180, background=background, seed=seed)
    alpha = fallback_alpha(rgb)
    assert alpha.shape == true.shape and alpha.dtype == np.uint8
    assert iou(alpha, true) >= 0.97
    edge = outline(true)
    soft = (alpha > 0) & (alpha < 255)
    assert (soft & edge).sum() >= 0.3 * edge.sum()  # anti-aliased, not a binary cut
    assert np.abs(alpha.astype(int) - true)[edge].mean() < 40
    assert (alpha[true == 0] == 0).mean() > 0.99 and (alpha[true == 255] == 255).mean() > 0.99


def test_large_toon_goes_through_the_working_size():
    rgb, true = draw_toon(700, 640, background=160, seed=4)
    alpha = fallback_alpha(rgb)
    assert iou(alpha, true) >= 0.97
    assert ((alpha > 0) & (alpha < 255) & outline(true)).any()


@pytest.mark.parametrize("seed", [0, 3])
def test_jpeg_artefacts(seed):
    rgb, true = draw_toon(320, 288, background=150, seed=seed)
    assert iou(fallback_alpha(jpeg(rgb, 80)), true) >= 0.97


def test_gradient_backdrop():
    rgb, true = draw_toon(300, 260, background=150, seed=5)
    ramp = np.linspace(-30, 30, 300)[:, None, None]
    shaded = np.clip(rgb + ramp * (1 - true[..., None] / 255.0), 0, 255).astype(np.uint8)
    assert iou(fallback_alpha(shaded), true) >= 0.97


def test_coloured_backdrop():
    rgb, true = draw_toon(240, 240, background=128, seed=6)
    a = true[..., None] / 255.0
    green = np.array([70, 160, 90], np.float64)
    recoloured = np.clip(rgb * a + green * (1 - a) + (rgb - 128.0) * 0, 0, 255).astype(np.uint8)
    # the outline pixels keep their drawn colour mixed with the new backdrop
    mixed = np.where((a > 0) & (a < 1), rgb * a + green * (1 - a), recoloured)
    assert iou(fallback_alpha(mixed.astype(np.uint8)), true) >= 0.97


def test_enclosed_backdrop_stays_a_hole():
    rgb, true = draw_toon(240, 240, background=170, seed=7)
    ring = np.zeros((240, 240), np.uint8)
    cv2.circle(ring, (40, 60), 28, 255, 9)  # a ring (like a bent arm) around backdrop
    rgb[ring > 0] = (30, 60, 200)
    true = np.maximum(true, ring)
    alpha = fallback_alpha(rgb)
    assert alpha[60, 40] == 0  # the middle of the ring shows the backdrop
    assert iou(alpha, true) >= 0.95


@pytest.mark.parametrize("shape", [(1, 1), (2, 9), (7, 7), (64, 80), (600, 500)])
@pytest.mark.parametrize("value", [0, 128, 255])
def test_uniform_image_is_all_background(shape, value):
    alpha = fallback_alpha(np.full((*shape, 3), value, np.uint8))
    assert alpha.shape == shape and alpha.dtype == np.uint8 and not alpha.any()


@pytest.mark.parametrize("shape", [(8, 8), (12, 15), (3, 200), (300, 4)])
def test_tiny_and_thin_images_do_not_crash(shape):
    rng = np.random.default_rng(0)
    alpha = fallback_alpha(rng.integers(0, 256, (*shape, 3), dtype=np.uint8))
    assert alpha.shape == shape and alpha.dtype == np.uint8


def test_busy_background_degrades_to_a_centred_subject():
    rgb, true = draw_toon(240, 240, background=128, seed=1)
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), (240, 240), interpolation=cv2.INTER_CUBIC)
    a = true[..., None] / 255.0
    busy = (rgb * a + texture * (1 - a)).astype(np.uint8)
    alpha = fallback_alpha(busy)
    assert alpha.shape == true.shape
    assert not alpha[:5].any() and not alpha[:, :5].any()  # the frame's margin is background
    assert iou(alpha, true) > 0.5


def test_rejects_non_rgb_arrays():
    with pytest.raises(BadImageError):
        fallback_alpha(np.zeros((10, 10), np.uint8))
    with pytest.raises(BadImageError):
        fallback_alpha(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(BadImageError):
        fallback_alpha(np.zeros((0, 10, 3), np.uint8))


def test_jpeg_file_of_a_character_cut_by_the_frame():
    # A drawn character on a plain backdrop, its body running out of the bottom edge (scripts/make_fixtures.py)
    rgb = cv2.imread(str(FIXTURES / "images" / "toon.jpg"), cv2.IMREAD_COLOR)[..., ::-1].copy()
    alpha = fallback_alpha(rgb)
    assert alpha.shape == rgb.shape[:2] == (320, 240)
    assert 0.15 < (alpha > 127).mean() < 0.3
    border = np.concatenate([alpha[:8].ravel(), alpha[:, :8].ravel(), alpha[:, -8:].ravel()])
    assert (border == 0).mean() > 0.99
    assert (alpha[-1] == 255).sum() > 60  # the body is foreground up to the frame
    assert ((alpha > 0) & (alpha < 255)).sum() > 500  # soft outline


# The naive baseline's (border flood fill + GrabCut, benchmarks/fallback_baseline.py) mean IoU on
# seeds 0-2 of each drawn category at 256 px, measured 2026-12-03 (OpenCV 4.14): the fallback's floors.
BASELINE_IOU = {
    "plain_grey": 0.968,
    "floor_shadow": 0.963,
    "white_on_light": 0.971,
    "dark_on_dark": 0.582,
    "touching_border": 0.963,
    "prop_held": 0.951,
    "prop_on_surface": 0.928,
}


@pytest.mark.parametrize("category", CATEGORIES)
def test_at_least_as_good_as_the_naive_baseline(category):
    cases = [make_case(category, 256, seed) for seed in range(3)]
    fallback = np.mean([metrics.iou(fallback_alpha(case.rgb), case.alpha) for case in cases])
    baseline = np.mean([metrics.iou(baseline_alpha(case.rgb), case.alpha) for case in cases])
    assert fallback >= BASELINE_IOU[category]
    assert fallback >= baseline  # and the baseline as it measures today


def test_same_image_same_matte_whatever_ran_before():
    # GrabCut's colour models start from k-means on OpenCV's global random generator
    case = make_case("floor_shadow", 256, 0)
    first = fallback_alpha(case.rgb)
    cv2.setRNGSeed(12345)
    cv2.kmeans(np.random.default_rng(0).random((50, 3), dtype=np.float32), 3, None,
               (cv2.TERM_CRITERIA_MAX_ITER, 3, 0), 1, cv2.KMEANS_RANDOM_CENTERS)
    baseline_alpha(case.rgb)
    assert np.array_equal(fallback_alpha(case.rgb), first)


def test_a_cel_shaded_shadow_beside_the_character_is_background():
    rgb, true = draw_toon(256, 256, background=160, seed=2)
    plain = np.full((256, 256, 3), 160.0, np.float32)
    shaded = floor_shadow(plain, (0.3, 0.92), (0.3, 0.06), 0.25, soft=False)  # a flat patch, sharp edge
    rgb = np.clip(np.rint(rgb + (1 - true[..., None] / 255.0) * (shaded - plain)), 0, 255).astype(np.uint8)
    shadow = (shaded[..., 0] < 150) & (true == 0)
    assert shadow.sum() > 1500
    alpha = fallback_alpha(rgb)
    assert (alpha[shadow] < 128).mean() > 0.99
    assert metrics.iou(alpha, true) >= 0.99
