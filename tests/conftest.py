"""Shared fixtures: paths to ../shared and procedurally drawn toon characters."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GOLDEN = SHARED / "golden"
SAMPLES = SHARED / "samples"


def draw_toon(height: int = 256, width: int = 256, background: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A flat-shaded toon character on a plain background: returns (rgb uint8 HxWx3, alpha uint8 HxW).

    The alpha is the exact coverage of the drawn shapes (anti-aliased edges), so it
    doubles as ground truth.
    """
    import cv2

    rng = np.random.default_rng(seed)
    scale = 8  # draw large and downsample for anti-aliased edges
    H, W = height * scale, width * scale
    mask = np.zeros((H, W), np.uint8)
    colour = np.zeros((H, W, 3), np.uint8)

    def shape(draw, rgb):
        layer = np.zeros((H, W), np.uint8)
        draw(layer)
        colour[layer > 0] = rgb
        mask[layer > 0] = 255

    cx, cy = W // 2 + int(rng.integers(-W // 10, W // 10)), H // 2
    skin = (250, 215, 185)
    hair = tuple(int(v) for v in rng.integers(30, 230, 3))
    cloth = tuple(int(v) for v in rng.integers(30, 230, 3))
    head_r = int(min(H, W) * 0.16)
    body_w, body_h = int(W * 0.22), int(H * 0.32)
    shape(lambda m: cv2.ellipse(m, (cx, cy + int(H * 0.24)), (body_w, body_h), 0, 180, 360, 255, -1), cloth)
    shape(lambda m: cv2.rectangle(m, (cx - body_w, cy + int(H * 0.24)), (cx + body_w, H - 1), 255, -1), cloth)
    shape(lambda m: cv2.circle(m, (cx, cy - int(H * 0.08)), head_r, 255, -1), skin)
    shape(lambda m: cv2.ellipse(m, (cx, cy - int(H * 0.12)), (int(head_r * 1.15), int(head_r * 0.8)), 0, 180, 360, 255, -1), hair)
    for side in (-1, 1):  # spiky hair strands
        pts = np.array([[cx + side * head_r, cy - int(H * 0.12)], [cx + side * int(head_r * 1.6), cy + int(H * 0.02)],
                        [cx + side * int(head_r * 0.8), cy - int(H * 0.06)]], np.int32)
        shape(lambda m, p=pts: cv2.fillPoly(m, [p], 255), hair)
        eye = (cx + side * head_r // 3, cy - int(H * 0.06))
        shape(lambda m, e=eye: cv2.circle(m, e, head_r // 6, 255, -1), (20, 20, 40))
    # dark outline, as in cel-shaded art
    edges = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3 * scale, 3 * scale), np.uint8))
    colour[edges > 0] = (25, 20, 30)

    bg = np.full((H, W, 3), background, np.uint8)
    rgb_big = np.where(mask[..., None] > 0, colour, bg)
    rgb = cv2.resize(rgb_big, (width, height), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(mask, (width, height), interpolation=cv2.INTER_AREA)
    return rgb, alpha


def save_png(path: Path, array: np.ndarray) -> None:
    """Write an array as an image file, creating its folder."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def toon() -> tuple[np.ndarray, np.ndarray]:
    return draw_toon()


@pytest.fixture(autouse=True)
def offline_hub(tmp_path_factory, monkeypatch):
    """No test may reach the Hugging Face Hub or the user's caches: offline, with empty temporary caches."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hf" / "hub"))
    monkeypatch.setenv("TOONMATTE_CACHE", str(home / "toonmatte"))
    monkeypatch.delenv("TOONMATTE_WEIGHTS", raising=False)
    return home
