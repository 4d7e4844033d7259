"""Brush strokes: decoding editor layers, applying foreground/background/edge strokes, snap, tint, stats."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from annotate.strokes import (
    BACKGROUND_COLOR,
    BACKGROUND_HEX,
    EDGE_COLOR,
    EDGE_HEX,
    FOREGROUND_COLOR,
    FOREGROUND_HEX,
    Strokes,
    apply_strokes,
    decode_strokes,
    retint,
    snap,
    strokes_from_editor,
    tint,
)
from conftest import draw_toon
from toonmatte.errors import ToonmatteError

SIZE = (64, 80)


def _layer(size=SIZE) -> np.ndarray:
    return np.zeros((*size, 4), np.uint8)


def _paint(layer: np.ndarray, box: tuple[slice, slice], color: tuple[int, int, int], alpha: int = 255) -> None:
    layer[box] = (*color, alpha)


def _mask(box: tuple[slice, slice], size=SIZE) -> np.ndarray:
    mask = np.zeros(size, bool)
    mask[box] = True
    return mask


def test_hex_colours_match_the_rgb_tuples():
    for hex_, rgb in ((FOREGROUND_HEX, FOREGROUND_COLOR), (BACKGROUND_HEX, BACKGROUND_COLOR), (EDGE_HEX, EDGE_COLOR)):
        assert tuple(int(hex_[i:i + 2], 16) for i in (1, 3, 5)) == rgb


def test_decode_exact_colours():
    layer = _layer()
    fg, bg, edge = (slice(2, 10), slice(3, 20)), (slice(30, 40), slice(5, 9)), (slice(50, 60), slice(60, 79))
    _paint(layer, fg, FOREGROUND_COLOR)
    _paint(layer, bg, BACKGROUND_COLOR)
    _paint(layer, edge, EDGE_COLOR)
    layer[20, 20] = (0, 255, 0, 0)  # transparent: ignored whatever its colour
    layer[21, 21] = (200, 200, 200, 255)  # some other colour: ignored
    strokes = decode_strokes([layer], SIZE)
    assert np.array_equal(strokes.foreground, _mask(fg))
    assert np.array_equal(strokes.background, _mask(bg))
    assert np.array_equal(strokes.edge, _mask(edge))
    assert strokes.any() and not decode_strokes([_layer()], SIZE).any()


def test_decode_anti_aliased_stroke_edges():
    """Stroke edges come back unpremultiplied (colour exact, partial alpha: decoded where at least
    half covered) or as a blend of the colour with transparent black (decoded or ignored, never misread)."""
    coverage = np.zeros((*SIZE, 1), np.float64)
    cv2.circle(coverage, (40, 32), 20, 1.0, -1, lineType=cv2.LINE_AA, shift=0)
    coverage = cv2.GaussianBlur(coverage, (0, 0), 1.5)[..., None]
    a = np.rint(coverage * 255).astype(np.uint8)
    expected = a[..., 0] >= 128
    assert 0 < expected.sum() < (a[..., 0] > 0).sum()  # there really are soft pixels
    straight = np.dstack([np.broadcast_to(np.array(FOREGROUND_COLOR, np.uint8), (*SIZE, 3)), a])
    premultiplied = np.dstack([np.rint(coverage * np.array(FOREGROUND_COLOR)).astype(np.uint8), a])
    strokes = decode_strokes(straight, SIZE)
    assert np.array_equal(strokes.foreground, expected)
    assert not strokes.background.any() and not strokes.edge.any()
    strokes = decode_strokes(premultiplied, SIZE)
    assert np.array_equal(strokes.foreground & ~expected, np.zeros(SIZE, bool))
    assert np.array_equal(strokes.foreground | (a[..., 0] < 192), np.ones(SIZE, bool))  # mostly covered: decoded
    assert not strokes.background.any() and not strokes.edge.any()


def test_decode_ignores_blends_of_two_brushes_and_upper_layer_wins():
    lower, upper = _layer(), _layer()
    _paint(lower, (slice(0, 30), slice(0, 80)), BACKGROUND_COLOR)
    _paint(upper, (slice(20, 40), slice(0, 80)), FOREGROUND_COLOR)
    upper[25, :10] = (128, 127, 0, 255)  # a 50/50 red/green seam pixel of the upper layer
    strokes = decode_strokes([lower, upper], SIZE)
    assert np.array_equal(strokes.background,
                          _mask((slice(0, 20), slice(0, 80))) | _mask((slice(25, 26), slice(0, 10))))
    fg = _mask((slice(20, 40), slice(0, 80)))
    fg[25, :10] = False
    assert np.array_equal(strokes.foreground, fg)
    assert not (strokes.foreground & strokes.background).any()


def test_decode_of_scattered_strokes_follows_the_per_pixel_rule():
    """Decoding works on boxes around runs of painted rows; every pixel must still get the brush
    whose colour box holds it (alpha >= 128, each channel within 100), wherever strokes lie."""
    rng = np.random.default_rng(7)
    layer = _layer((90, 70))
    for _ in range(6):  # strokes in separate row runs and side by side in the same rows
        top, left = int(rng.integers(0, 80)), int(rng.integers(0, 60))
        _paint(layer, (slice(top, top + 8), slice(left, left + 9)),
               [FOREGROUND_COLOR, BACKGROUND_COLOR, EDGE_COLOR][int(rng.integers(0, 3))], int(rng.integers(100, 256)))
    ys, xs = rng.integers(0, 90, 300), rng.integers(0, 70, 300)
    layer[ys, xs] = rng.integers(0, 256, (300, 4))  # noise: colours in and out of the boxes
    strokes = decode_strokes([layer], (90, 70))
    colour, opaque = layer[..., :3].astype(int), layer[..., 3] >= 128
    for mask, brush in ((strokes.foreground, FOREGROUND_COLOR), (strokes.background, BACKGROUND_COLOR),
                        (strokes.edge, EDGE_COLOR)):
        assert np.array_equal(mask, opaque & (np.abs(colour - brush) <= 100).all(axis=2))
    assert strokes.foreground.any() and strokes.background.any() and strokes.edge.any()


def test_decode_layer_of_another_size_and_other_input_types(tmp_path):
    small = np.zeros((32, 40, 4), np.uint8)
    _paint(small, (slice(4, 8), slice(10, 20)), EDGE_COLOR)
    strokes = decode_strokes([small], SIZE)
    assert np.array_equal(strokes.edge, _mask((slice(8, 16), slice(20, 40))))
    path = tmp_path / "layer.png"
    Image.fromarray(small).save(path)
    for layer in (Image.fromarray(small), str(path)):
        assert np.array_equal(decode_strokes([layer], (32, 40)).edge, _mask((slice(4, 8), slice(10, 20)), (32, 40)))
    rgb_mode = small[..., :3].copy()  # image_mode="RGB": transparent pixels come back black
    assert np.array_equal(decode_strokes([rgb_mode], (32, 40)).edge, _mask((slice(4, 8), slice(10, 20)), (32, 40)))
    with pytest.raises(ToonmatteError, match="RGBA"):
        decode_strokes([small[..., 0]], (32, 40))


def test_strokes_from_editor_value():
    layer = _layer()
    _paint(layer, (slice(1, 3), slice(1, 3)), FOREGROUND_COLOR)
    value = {"background": np.zeros((*SIZE, 4), np.uint8), "layers": [layer], "composite": None}
    assert strokes_from_editor(value, SIZE).foreground.sum() == 4
    assert not strokes_from_editor(None, SIZE).any()
    assert not strokes_from_editor({"background": None, "layers": [], "composite": None}, SIZE).any()


def test_apply_foreground_and_background_exactly_and_nothing_else(toon):
    image, alpha = toon
    h, w = alpha.shape
    fg, bg = np.zeros((h, w), bool), np.zeros((h, w), bool)
    cv2.line(fg.view(np.uint8), (20, 20), (120, 200), 1, 9)
    cv2.circle(bg.view(np.uint8), (200, 60), 25, 1, -1)
    out = apply_strokes(image, alpha, Strokes(fg, bg, np.zeros_like(fg)))
    assert (out[fg] == 255).all() and (out[bg] == 0).all()
    untouched = ~(fg | bg)
    assert np.array_equal(out[untouched], alpha[untouched])
    assert out.dtype == np.uint8 and out.shape == alpha.shape
    assert np.array_equal(apply_strokes(image, alpha, Strokes.empty((h, w))), alpha)


def _blurred_toon(sigma: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """draw_toon seen out of focus: colour and coverage blurred together (premultiplied), so the
    true alpha has wide soft edges and the image is an exact composite over the gray background."""
    rgb, alpha = draw_toon(160, 160, seed=seed)
    a = alpha.astype(np.float64) / 255.0
    premultiplied = rgb.astype(np.float64) - (1.0 - a[..., None]) * 128.0
    soft_a = cv2.GaussianBlur(a, (0, 0), sigma)
    image = cv2.GaussianBlur(premultiplied, (0, 0), sigma) + (1.0 - soft_a[..., None]) * 128.0
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), np.rint(soft_a * 255.0).astype(np.uint8)


def test_edge_band_is_resolved_to_the_true_soft_alpha():
    image, truth = _blurred_toon(sigma=1.0)
    predicted = np.where(truth >= 128, 255, 0).astype(np.uint8)  # the model's hard edge
    soft = (truth > 0) & (truth < 255)
    near_soft = cv2.dilate(soft.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    band = near_soft & _mask((slice(15, 85), slice(70, 150)), (160, 160))
    assert band.sum() > 100
    out = apply_strokes(image, predicted, Strokes(np.zeros_like(band), np.zeros_like(band), band))
    error = np.abs(out[band].astype(int) - truth[band]).mean()
    before = np.abs(predicted[band].astype(int) - truth[band]).mean()
    assert error < 10 and error < before / 3
    assert ((out[band] > 20) & (out[band] < 235)).sum() > band.sum() // 4  # soft values, not a hard cut
    assert np.array_equal(out[~band], predicted[~band])


def test_edge_band_on_the_sharp_toon_recovers_anti_aliasing(toon):
    image, truth = toon
    predicted = np.where(truth >= 128, 255, 0).astype(np.uint8)
    band = cv2.dilate(((truth > 0) & (truth < 255)).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    band &= _mask((slice(0, 128), slice(0, 256)), truth.shape)
    out = apply_strokes(image, predicted, Strokes(np.zeros_like(band), np.zeros_like(band), band))
    assert np.abs(out[band].astype(int) - truth[band]).mean() < 3
    assert np.array_equal(out[~band], predicted[~band])


def test_edge_band_with_nothing_known_around_is_left_alone():
    image = np.full((40, 40, 3), 90, np.uint8)
    alpha = np.full((40, 40), 128, np.uint8)  # all soft: no known pixel anywhere
    band = _mask((slice(10, 20), slice(10, 20)), (40, 40))
    out = apply_strokes(image, alpha, Strokes(np.zeros_like(band), np.zeros_like(band), band))
    assert np.array_equal(out, alpha)


def test_snap_fills_a_missed_region_from_rough_strokes():
    image, truth = draw_toon(192, 192)
    predicted = truth.copy()
    missing = _mask((slice(30, 75), slice(0, 192)), truth.shape)  # the model lost the top of the head
    predicted[missing] = 0
    fg, bg = np.zeros(truth.shape, bool), np.zeros(truth.shape, bool)
    cv2.line(fg.view(np.uint8), (85, 57), (110, 60), 1, 4)  # one rough scribble inside
    cv2.line(bg.view(np.uint8), (70, 14), (125, 18), 1, 4)  # and one above the head
    strokes = Strokes(fg, bg, np.zeros_like(fg))
    out = snap(image, predicted, strokes)
    inside = missing & (truth >= 128)
    union = missing & ((out >= 128) | (truth >= 128))
    assert ((out >= 128) & inside).sum() / union.sum() > 0.95
    assert np.abs(out[missing].astype(int) - truth[missing]).mean() < 5
    # only the stroke-affected area changes: the lost region and its seam, nothing elsewhere
    changed_rows = np.flatnonzero((out != predicted).any(axis=1))
    assert changed_rows.min() >= 28 and changed_rows.max() <= 78
    assert (out[fg] == 255).all() and (out[bg] == 0).all()


def test_snap_without_strokes_changes_nothing(toon):
    image, alpha = toon
    assert np.array_equal(snap(image, alpha, Strokes.empty(alpha.shape)), alpha)


def test_tint_marks_background_only():
    image = np.full((4, 6, 3), 100, np.uint8)
    alpha = np.zeros((4, 6), np.uint8)
    alpha[:, :3] = 255
    out = tint(image, alpha, color=(255, 0, 255), opacity=0.5)
    assert out.shape == (4, 6, 3) and out.dtype == np.uint8
    assert np.array_equal(out[:, :3], image[:, :3])
    assert np.abs(out[:, 3:].astype(int) - [178, 50, 178]).max() <= 1


def test_retint_equals_a_full_tint(toon):
    image, alpha = toon
    after = alpha.copy()
    after[100:120, 30:90] = 255
    after[5:9, 200:210] = 0
    preview = tint(image, alpha, (0, 255, 255), 0.3)
    updated = retint(preview, image, alpha, after, (0, 255, 255), 0.3)
    assert np.array_equal(updated, tint(image, after, (0, 255, 255), 0.3))
    assert not np.array_equal(updated, preview) and np.array_equal(preview, tint(image, alpha, (0, 255, 255), 0.3))


def test_mismatched_sizes_are_refused(toon):
    image, alpha = toon
    with pytest.raises(ToonmatteError, match="decode them at the matte's size"):
        apply_strokes(image, alpha, Strokes.empty((10, 10)))
    with pytest.raises(ToonmatteError, match="8-bit RGB"):
        apply_strokes(image[..., 0], alpha, Strokes.empty(alpha.shape))


def test_decoding_a_scaled_layer_equals_decoding_it_resized_to_full_size():
    """Strokes from a scaled-down editor canvas: masks are decoded at the layer's size, then scaled."""
    rng = np.random.default_rng(3)
    small = np.zeros((37, 53, 4), np.uint8)
    for colour in (FOREGROUND_COLOR, BACKGROUND_COLOR, EDGE_COLOR):
        for _ in range(4):
            y, x = rng.integers(0, 30), rng.integers(0, 45)
            _paint(small, (slice(y, y + int(rng.integers(2, 8))), slice(x, x + int(rng.integers(2, 9)))), colour)
    size = (101, 149)  # not a whole multiple of the layer
    expected = decode_strokes([cv2.resize(small, size[::-1], interpolation=cv2.INTER_NEAREST)], size)
    got = decode_strokes([small], size)
    for name in ("foreground", "background", "edge"):
        assert np.array_equal(getattr(got, name), getattr(expected, name)), name
        assert getattr(got, name).any()
