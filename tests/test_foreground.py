"""toonmatte.imaging.foreground: blur fusion against the reference output, the torch port, cut-outs."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import FIXTURES, draw_toon
from toonmatte.errors import BadImageError
from toonmatte.imaging.foreground import (
    box_blur_torch,
    cutout,
    estimate_foreground,
    estimate_foreground_torch,
    parse_colour,
)

torch = pytest.importorskip("torch")

OUTLINE = np.array([25, 20, 30])  # draw_toon's outline colour: the colour of every soft edge pixel


def plain_blur_fusion(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The published formula written the obvious way (float32, whole arrays), as the oracle."""
    i = (image / 255.0).astype(np.float32)
    a = (alpha / 255.0).astype(np.float32)[..., None]

    def step(f, b, r):
        ba = cv2.blur(a, (r, r))[..., None]
        f_ = cv2.blur(f * a, (r, r)) / (ba + 1e-5)
        b_ = cv2.blur(b * (1 - a), (r, r)) / ((1 - ba) + 1e-5)
        return np.clip(f_ + a * (i - a * f_ - (1 - a) * b_), 0, 1), b_

    f, b = step(i, i, 90)
    f, _ = step(f, b, 6)
    return (f * 255.0).astype(np.uint8)


def test_matches_reference_output_exactly():
    # The top-left corner of the reference's input (noisy discs, soft alpha; two true image borders) and the
    # reference output where the rest of its image is out of reach (box 90 then box 6 read 48 pixels away).
    golden = np.load(FIXTURES / "foreground.npz")
    reach = int(golden["reach"])
    assert reach >= 90 // 2 + 6 // 2
    ours = estimate_foreground(golden["image"], golden["alpha"])
    np.testing.assert_array_equal(ours[:-reach, :-reach], golden["foreground"])


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (47, 130), (300, 260)])
def test_matches_plain_formula_at_any_size(shape):
    image, alpha = draw_toon(*shape, background=150, seed=3) if min(shape) >= 8 else (
        np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8),
        np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8),
    )
    np.testing.assert_array_equal(estimate_foreground(image, alpha), plain_blur_fusion(image, alpha))


def test_removes_background_from_soft_edges():
    image, alpha = draw_toon(192, 192, background=200, seed=1)
    fg = estimate_foreground(image, alpha).astype(int)
    soft = (alpha > 20) & (alpha < 235)
    assert soft.sum() > 50
    before = np.abs(image[soft].astype(int) - OUTLINE).sum(1).mean()
    after = np.abs(fg[soft] - OUTLINE).sum(1).mean()
    assert after < 0.5 * before  # the light gray background no longer bleeds into the dark outline
    assert np.abs(fg[alpha == 255] - image[alpha == 255]).max() <= 1  # opaque pixels keep their colour


def test_accepts_hw1_alpha_and_rejects_bad_shapes():
    image, alpha = draw_toon(32, 32)
    np.testing.assert_array_equal(estimate_foreground(image, alpha[..., None]), estimate_foreground(image, alpha))
    with pytest.raises(BadImageError, match="alpha"):
        estimate_foreground(image, alpha[:-1])
    with pytest.raises(BadImageError, match="alpha"):
        estimate_foreground(image, alpha.astype(np.float32))
    with pytest.raises(BadImageError, match="image"):
        estimate_foreground(image[..., :2], alpha)


@pytest.mark.parametrize("shape", [(1, 1), (2, 7), (50, 37), (97, 120)])
@pytest.mark.parametrize("r", [90, 6, 5])
def test_torch_box_blur_matches_opencv(shape, r):
    x = np.random.default_rng(r).random(shape, dtype=np.float32)
    got = box_blur_torch(torch.from_numpy(x)[None, None], r)[0, 0].numpy()
    np.testing.assert_allclose(got, cv2.blur(x, (r, r)), atol=1e-6)


@pytest.mark.parametrize("r", [90, 6])
def test_float32_sums_stay_within_a_hundredth_of_a_level_at_2048(r):
    # the GPU path accumulates in float32; the CPU's sequential cumsum is its worst case
    x = torch.rand(1, 2, 2048, 2048, generator=torch.Generator().manual_seed(r))
    exact = box_blur_torch(x, r)
    fast = box_blur_torch(x, r, accumulate=torch.float32)
    assert fast.dtype == torch.float32
    assert (fast - exact).abs().max().item() * 255 < 0.01


@pytest.mark.parametrize("accumulate", [None, torch.float32])  # float32: the sums a GPU uses
def test_torch_version_agrees_with_numpy_within_one_level(accumulate):
    pairs = [draw_toon(96, 128, background=b, seed=s) for s, b in ((0, 97), (1, 218))]
    images = torch.stack([torch.from_numpy(i).permute(2, 0, 1) for i, _ in pairs]).float() / 255
    alphas = torch.stack([torch.from_numpy(a)[None] for _, a in pairs]).float() / 255
    result = estimate_foreground_torch(images, alphas, accumulate=accumulate)
    assert result.shape == images.shape and result.dtype == images.dtype
    for k, (image, alpha) in enumerate(pairs):
        got = (result[k] * 255).to(torch.uint8).permute(1, 2, 0).numpy().astype(int)
        assert np.abs(got - estimate_foreground(image, alpha)).max() <= 1


def test_torch_version_computes_in_float32_for_half_inputs():
    image, alpha = draw_toon(48, 40, background=200, seed=2)
    images = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    alphas = torch.from_numpy(alpha)[None, None].float() / 255
    full = estimate_foreground_torch(images, alphas)
    half = estimate_foreground_torch(images.to(torch.bfloat16), alphas.to(torch.bfloat16))
    assert half.dtype == torch.float32
    assert (half - full).abs().max() < 0.02  # only the bf16 rounding of the inputs differs


def test_torch_version_rejects_bad_shapes():
    with pytest.raises(BadImageError):
        estimate_foreground_torch(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 9))
    with pytest.raises(BadImageError):
        estimate_foreground_torch(torch.zeros(3, 8, 8), torch.zeros(1, 8, 8))


def test_cutout_rgba():
    image, alpha = draw_toon(64, 64, background=120)
    rgba = cutout(image, alpha)
    assert rgba.shape == (64, 64, 4) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[..., 3], alpha)
    np.testing.assert_array_equal(rgba[..., :3], estimate_foreground(image, alpha))
    np.testing.assert_array_equal(cutout(image, alpha, foreground=False)[..., :3], image)


@pytest.mark.parametrize("colour", ["#ff0000", "#F00", (255, 0, 0)])
def test_cutout_on_colour(colour):
    image, alpha = draw_toon(64, 64, background=120)
    out = cutout(image, alpha, background=colour)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert (out[alpha == 0] == (255, 0, 0)).all()
    np.testing.assert_array_equal(out[alpha == 255], estimate_foreground(image, alpha)[alpha == 255])
    soft = (alpha > 0) & (alpha < 255)
    fg = estimate_foreground(image, alpha)[soft].astype(float)
    a = alpha[soft, None] / 255.0
    assert np.abs(out[soft] - (fg * a + np.array([255, 0, 0]) * (1 - a))).max() <= 0.5 + 1e-9


def test_cutout_on_image_resizes_it():
    image, alpha = draw_toon(64, 80, background=120)
    plate = np.zeros((32, 40, 3), np.uint8)
    plate[..., 2] = 200
    out = cutout(image, alpha, background=plate, foreground=False)
    assert out.shape == (64, 80, 3)
    assert (out[alpha == 0] == (0, 0, 200)).all()
    np.testing.assert_array_equal(out[alpha == 255], image[alpha == 255])


@pytest.mark.parametrize("bad", ["red", "#12345", (1, 2), (0, 0, 256), "#gggggg"])
def test_bad_colours_are_one_sentence_errors(bad):
    image, alpha = draw_toon(16, 16)
    with pytest.raises(BadImageError) as info:
        cutout(image, alpha, background=bad)
    assert "\n" not in str(info.value)


def test_parse_colour():
    assert parse_colour("#0a0B0c") == (10, 11, 12)
    assert parse_colour("fff") == (255, 255, 255)
    assert parse_colour([1, 2, 3]) == (1, 2, 3)


def test_cutout_rejects_bad_background_image():
    image, alpha = draw_toon(16, 16)
    with pytest.raises(BadImageError, match="background"):
        cutout(image, alpha, background=np.zeros((4, 4, 3), np.float32))
