"""Training-time augmentation of an (image, alpha) pair; every random draw comes from the caller's generator.

ToonOut's set: horizontal flip, colour enhancement, small rotations and pepper noise. The alpha
follows every geometric change with the same bilinear sampling and is never binarized (hard
edges ruin hair). Beyond ToonOut, ``recomposite`` puts the character's decontaminated cut-out
(the dataset's ``an``) onto a new background; it is off unless asked for.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

FLIP_P = 0.5
ROTATE_P = 0.2
MAX_DEGREES = 15.0
COLOUR_P = 0.5
COLOUR_FACTORS = (0.8, 1.2)  # brightness, contrast and saturation are each scaled by a factor in this range
PEPPER_P = 0.3
PEPPER_SHARE = 0.0015  # of the pixels, each set to black or white
GREY_SHADES = (40, 240)  # ToonOut's own backgrounds are greys of about 97..218
SIMILAR_JITTER = 24  # per channel, around a colour taken from the character itself
OPAQUE = 0.95


@dataclass(frozen=True)
class Augmentation:
    """What to apply: ToonOut's set (``basic``) and re-compositing with probability ``recomposite``."""

    basic: bool = True
    recomposite: float = 0.0


def augment(rgb: np.ndarray, alpha: np.ndarray, rng: np.random.Generator, settings: Augmentation,
            foreground: Callable[[], np.ndarray | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Augmented copies of ``rgb`` (uint8 HxWx3) and ``alpha`` (float32 HxW in [0, 1]).

    ``foreground()`` reads the cut-out's colours (uint8 HxWx3, the size of ``rgb``), or gives None
    when the item has no ``an``; it is called only when this sample is re-composited.
    """
    if settings.recomposite > 0 and rng.random() < settings.recomposite and foreground is not None:
        colours = foreground()
        if colours is not None:
            rgb = composite(colours, alpha, new_background(colours, alpha, rng))
    if not settings.basic:
        return rgb, alpha
    if rng.random() < FLIP_P:
        rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
    if rng.random() < ROTATE_P:
        rgb, alpha = rotate(rgb, alpha, rng.uniform(-MAX_DEGREES, MAX_DEGREES))
    if rng.random() < COLOUR_P:
        rgb = enhance_colour(rgb, *rng.uniform(*COLOUR_FACTORS, size=3))
    if rng.random() < PEPPER_P:
        rgb = pepper(rgb, rng)
    return np.ascontiguousarray(rgb), np.ascontiguousarray(alpha)


def rotate(rgb: np.ndarray, alpha: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Both rotated about the centre, bilinear; the corners repeat the border in both (a character cut
    by the frame stays foreground there, a background stays background)."""
    height, width = alpha.shape
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), degrees, 1.0)

    def warp(array: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(np.ascontiguousarray(array), matrix, (width, height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)

    return warp(rgb), warp(alpha)


def enhance_colour(rgb: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """Scale brightness, then contrast about the mean grey, then saturation about each pixel's grey."""
    x = rgb.astype(np.float32) * brightness
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = (x - grey.mean()) * contrast + grey.mean()
    grey = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    x = (x - grey) * saturation + grey
    return np.clip(x, 0, 255).round().astype(np.uint8)


def pepper(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A few scattered pixels set to black or white."""
    out = rgb.copy()
    height, width = out.shape[:2]
    count = max(1, int(PEPPER_SHARE * height * width))
    ys, xs = rng.integers(0, height, count), rng.integers(0, width, count)
    out[ys, xs] = rng.choice(np.array([0, 255], np.uint8), size=(count, 1))
    return out


def composite(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``foreground * alpha + background * (1 - alpha)`` in uint8."""
    a = alpha[..., None]
    mixed = foreground.astype(np.float32) * a + background.astype(np.float32) * (1.0 - a)
    return np.clip(mixed, 0, 255).round().astype(np.uint8)


def new_background(foreground: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of three kinds, equally likely: a plain grey of another shade; a hard negative in a colour
    taken from the character itself; a texture (smooth colour clouds with fine grain)."""
    height, width = alpha.shape
    kind = rng.integers(3)
    if kind == 0:
        return np.full((height, width, 3), rng.integers(*GREY_SHADES), np.uint8)
    if kind == 1:
        opaque = foreground[alpha > OPAQUE]
        colour = opaque[rng.integers(len(opaque))] if len(opaque) else rng.integers(0, 256, 3)
        colour = np.clip(colour.astype(np.int32) + rng.integers(-SIMILAR_JITTER, SIMILAR_JITTER + 1, 3), 0, 255)
        return np.broadcast_to(colour.astype(np.uint8), (height, width, 3)).copy()
    return texture(height, width, rng)


def texture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency colour clouds (a few random cells, smoothly enlarged) plus fine grain."""
    cells = int(rng.integers(2, 9))
    clouds = cv2.resize(rng.uniform(0, 255, (cells, cells, 3)).astype(np.float32), (width, height),
                        interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0.0, rng.uniform(2, 20), (height, width, 1)).astype(np.float32)
    return np.clip(clouds + grain, 0, 255).round().astype(np.uint8)
