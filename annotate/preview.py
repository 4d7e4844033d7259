"""Preview images of a matte: the cut-out over a checkerboard or a plain colour, or the alpha alone.

The studio composes previews at ``PREVIEW_SIDE`` (the page shows them about 480 px high) from
colours and alpha shrunk once per matte, so switching the preview background costs no matting
work and little compositing; downloads and saved triples stay at full resolution.
"""
from __future__ import annotations

import re
from functools import lru_cache

import cv2
import numpy as np

from toonmatte.imaging.foreground import cutout, parse_colour

CHECKERBOARD = "checkerboard"
WHITE = "white"
BLACK = "black"
GRAY = "#808080"
CUSTOM = "custom colour"
ALPHA = "alpha alone"
DIFFERS = "where it differs from the model"
UNSURE = "where the model hesitates"
OVERLAYS = (DIFFERS, UNSURE)
"""Views of the model's mistakes over the dimmed image: red where the matte differs from the model's
prediction by more than ToonOut's tolerance (|Δα| > 10, as Pixel Accuracy counts), yellow where the
prediction is neither near 0 nor near 255 (``toonmatte.evaluation.uncertainty``)."""
BACKGROUNDS: tuple[str, ...] = (CHECKERBOARD, WHITE, BLACK, GRAY, CUSTOM, ALPHA, *OVERLAYS)
"""The preview choices shown in the studio, in order."""

_PLAIN = {WHITE: (255, 255, 255), BLACK: (0, 0, 0), GRAY: (128, 128, 128)}
CHECKER_LIGHT, CHECKER_DARK = 204, 153
PREVIEW_SIDE = 1024
"""Longest side of the studio's preview images: sharp at the page's size on a high-density screen."""


def checkerboard(height: int, width: int, cell: int | None = None) -> np.ndarray:
    """An RGB uint8 checkerboard (read-only, shared); the cell size defaults to about 1/32 of the
    longer side (at least 8 px)."""
    if cell is None:
        cell = max(8, max(height, width) // 32)
    return _checkerboard(height, width, cell)


@lru_cache(maxsize=8)
def _checkerboard(height: int, width: int, cell: int) -> np.ndarray:
    rows = (np.arange(height) // cell)[:, None]
    cols = (np.arange(width) // cell)[None, :]
    plane = np.where((rows + cols) % 2 == 0, CHECKER_LIGHT, CHECKER_DARK).astype(np.uint8)
    board = np.repeat(plane[..., None], 3, axis=2)
    board.flags.writeable = False
    return board


def cutout_rgba(image: np.ndarray, alpha: np.ndarray, decontaminate: bool = True) -> np.ndarray:
    """The RGBA cut-out (uint8 HxWx4); ``decontaminate`` re-estimates edge colours without the old background."""
    return cutout(image, alpha, background=None, foreground=decontaminate)


def over(rgba: np.ndarray, background: np.ndarray | str | tuple[int, int, int]) -> np.ndarray:
    """Composite an RGBA cut-out over an RGB image or a colour: ``F * a + B * (1 - a)`` as RGB uint8."""
    return _over(np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3]), background)


def _over(colours: np.ndarray, alpha: np.ndarray, background: np.ndarray | str | tuple[int, int, int]) -> np.ndarray:
    if not (isinstance(background, np.ndarray) and background.shape == colours.shape and background.dtype == np.uint8):
        return cutout(colours, alpha, background=background, foreground=False)
    weight = alpha.astype(np.float32)
    weight *= 1.0 / 255.0
    return cv2.blendLinear(colours, np.ascontiguousarray(background), weight, 1.0 - weight)


def custom_colour(text: str | None) -> tuple[int, int, int]:
    """The colour picker's value as (r, g, b): '#rrggbb', '#rgb', or CSS 'rgb(r, g, b)' / 'rgba(r, g, b, a)'."""
    text = (text or GRAY).strip()
    match = re.fullmatch(r"rgba?\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*(?:,\s*[\d.]+\s*)?\)", text)
    if match:
        return tuple(min(255, round(float(v))) for v in match.groups())  # type: ignore[return-value]
    return parse_colour(text)


def view(rgba: np.ndarray, choice: str, custom: str | None = None) -> np.ndarray:
    """The preview for one of ``BACKGROUNDS`` (``custom`` is the '#rrggbb' for CUSTOM).

    ALPHA gives the alpha as an RGB gray image, so every view has the same type.
    """
    return compose(np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3]), choice, custom)


def compose(colours: np.ndarray, alpha: np.ndarray, choice: str, custom: str | None = None) -> np.ndarray:
    """``view`` of a cut-out given as its colours (HxWx3) and alpha (HxW) apart."""
    if choice == ALPHA:
        return cv2.merge([alpha, alpha, alpha])
    if choice == CHECKERBOARD:
        return _over(colours, alpha, checkerboard(*alpha.shape))
    if choice == CUSTOM:
        rgb = custom_colour(custom)
    elif choice in _PLAIN:
        rgb = _PLAIN[choice]
    else:
        raise ValueError(f"unknown preview background {choice!r}; use one of {', '.join(BACKGROUNDS)}")
    plate = np.empty_like(colours)
    plate[...] = rgb
    return _over(colours, alpha, plate)


def overlay(image: np.ndarray, predicted: np.ndarray, alpha: np.ndarray, choice: str) -> np.ndarray:
    """One of ``OVERLAYS`` for an image, the model's predicted alpha and the current alpha (same size)."""
    from toonmatte.evaluation.metrics import WRONG_TOLERANCE
    from toonmatte.evaluation.uncertainty import HIGH, LOW

    if choice == DIFFERS:
        marked = np.abs(alpha.astype(np.int16) - predicted.astype(np.int16)) > WRONG_TOLERANCE
        colour = (255, 0, 0)
    elif choice == UNSURE:
        marked = (predicted > LOW) & (predicted < HIGH)
        colour = (255, 220, 0)
    else:
        raise ValueError(f"unknown overlay {choice!r}; use one of {', '.join(OVERLAYS)}")
    shown = (image.astype(np.uint16) * 2 // 5).astype(np.uint8)  # dimmed, so the marks stand out
    shown[marked] = colour
    return shown


def thumbnail(image: np.ndarray, longest: int = 256) -> np.ndarray:
    """Shrink an image (any channel count) so its longer side is at most ``longest`` pixels."""
    h, w = image.shape[:2]
    scale = longest / max(h, w)
    if scale >= 1.0:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
