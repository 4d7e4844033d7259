"""``python -m benchmarks.uncertainty``: how well the uncertainty score ranks corrections, on a dataset
of toon characters whose "predictions" carry the mistakes people fix, in known amounts.

Each item is a drawn character (its exact alpha is the saved gt) and a prediction with one kind of
mistake at a random strength: a noisy half-transparent rim, stray islands, holes, a missing part,
a halo of background, or none (a clean matte, slightly blurred). Saved through the dataset store
with the prediction kept beside the gt, exactly as the studio saves a correction; then
``python -m toonmatte evaluate --uncertainty`` measures the ranking. Some mistakes (a cleanly
missing part, a halo) leave no trace in the matte itself: the score cannot see them, and the
measurement shows how much that costs.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

MISTAKES = ("clean", "soft_rim", "islands", "holes", "missing_part", "halo")


def draw_character(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A flat toon character (head, hair, body) on a near-uniform grey: (rgb, exact alpha)."""
    scale = 4
    big = size * scale
    mask = np.zeros((big, big), np.uint8)
    cx = big // 2 + int(rng.integers(-big // 10, big // 10))
    head = int(big * rng.uniform(0.12, 0.18))
    cv2.circle(mask, (cx, int(big * 0.35)), head, 255, -1)
    cv2.ellipse(mask, (cx, int(big * 0.8)), (int(big * rng.uniform(0.15, 0.25)), int(big * 0.3)), 0, 180, 360, 255, -1)
    cv2.rectangle(mask, (cx - big // 40, int(big * 0.4)), (cx + big // 40, int(big * 0.55)), 255, -1)
    for side in (-1, 1):
        tip = (cx + side * int(head * rng.uniform(1.3, 1.8)), int(big * rng.uniform(0.3, 0.5)))
        cv2.fillPoly(mask, [np.array([[cx + side * head // 2, int(big * 0.3)], tip,
                                      [cx + side * head, int(big * 0.38)]], np.int32)], 255)
    alpha = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA)
    grey = int(rng.integers(110, 150))
    colour = np.array([rng.integers(30, 230, 3)], np.uint8).reshape(1, 1, 3)
    rgb = np.where(alpha[..., None] > 127, colour, np.full((1, 1, 3), grey, np.uint8)).astype(np.uint8)
    return rgb, alpha


def _blobs(shape: tuple[int, int], count: int, radius: int, rng: np.random.Generator) -> np.ndarray:
    layer = np.zeros(shape, np.uint8)
    for _ in range(count):
        centre = (int(rng.integers(0, shape[1])), int(rng.integers(0, shape[0])))
        cv2.circle(layer, centre, max(1, int(radius * rng.uniform(0.5, 1.5))), 255, -1)
    return layer > 0


def with_mistake(gt: np.ndarray, kind: str, strength: float, rng: np.random.Generator) -> np.ndarray:
    """``gt`` as a model might have predicted it, with one ``kind`` of mistake; ``strength`` in [0, 1]."""
    size = gt.shape[0]
    pred = cv2.GaussianBlur(gt, (3, 3), 0)
    if kind == "soft_rim":
        width = 1 + int(strength * size * 0.04)
        kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
        rim = (cv2.dilate(gt, kernel) > 0) & (cv2.erode(gt, kernel) < 255)
        noise = rng.uniform(40, 215, gt.shape)
        pred = np.where(rim, noise, pred)
    elif kind == "islands":
        spots = _blobs(gt.shape, 1 + int(strength * 8), max(1, int(size * 0.02)), rng) & (gt == 0)
        pred = np.where(spots, 255, pred)
    elif kind == "holes":
        spots = _blobs(gt.shape, 1 + int(strength * 8), max(1, int(size * 0.02)), rng) & (gt == 255)
        pred = np.where(spots, 0, pred)
    elif kind == "missing_part":  # the lower left of the character, cut off cleanly
        ys, xs = np.nonzero(gt > 127)
        top = int(ys.min() + (ys.max() - ys.min()) * (1 - 0.4 * strength))
        pred = pred.copy()
        pred[top:, : int(xs.mean())] = 0
    elif kind == "halo":
        grow = 1 + int(strength * size * 0.05)
        pred = cv2.dilate(pred, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    elif kind != "clean":
        raise ValueError(f"unknown mistake {kind!r}")
    return np.clip(pred, 0, 255).astype(np.uint8)


def build_dataset(root: Path, count: int, size: int = 192, seed: int = 0) -> None:
    """``count`` corrected items under ``root``, mistakes cycling through ``MISTAKES``."""
    from toonmatte.dataset import DatasetStore, encode_triple

    rng = np.random.default_rng(seed)
    with DatasetStore(root, generation="synthetic") as store:
        for i in range(count):
            rgb, gt = draw_character(size, rng)
            kind = MISTAKES[i % len(MISTAKES)]
            prediction = with_mistake(gt, kind, float(rng.uniform(0.1, 1.0)), rng)
            store.save_triple(f"{kind}-{i:03d}", encode_triple(rgb, gt, rgb, prediction))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.uncertainty", description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=120)
    parser.add_argument("--size", type=int, default=192)
    args = parser.parse_args()
    from toonmatte.cli import main as cli

    with tempfile.TemporaryDirectory() as folder:
        build_dataset(Path(folder), args.items, args.size)
        return cli(["evaluate", "--uncertainty", "--data", folder])


if __name__ == "__main__":
    raise SystemExit(main())
