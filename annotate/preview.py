"""Preview images of a matte: the cut-out over a checkerboard or a plain colour, or the alpha alone.

The decontaminated cut-out is computed once per alpha (``cutout_rgba``); every background view is
then a cheap composite of that RGBA, so switching the preview background costs no matting work.
"""
from __future__ import annotations

import re

import numpy as np

from toonmatte.foreground import cutout, parse_colour

CHECKERBOARD = "checkerboard"
WHITE = "white"
BLACK = "black"
GRAY = "#808080"
CUSTOM = "custom colour"
ALPHA = "alpha alone"
BACKGROUNDS: tuple[str, ...] = (CHECKERBOARD, WHITE, BLACK, GRAY, CUSTOM, ALPHA)
"""The preview choices shown in the studio, in order."""

_PLAIN = {WHITE: (255, 255, 255), BLACK: (0, 0, 0), GRAY: (128, 128, 128)}
CHECKER_LIGHT, CHECKER_DARK = 204, 153


def checkerboard(height: int, width: int, cell: int | None = None) -> np.ndarray:
    """An RGB uint8 checkerboard; the cell size defaults to about 1/32 of the longer side (at least 8 px)."""
    if cell is None:
        cell = max(8, max(height, width) // 32)
    rows = (np.arange(height) // cell)[:, None]
    cols = (np.arange(width) // cell)[None, :]
    plane = np.where((rows + cols) % 2 == 0, CHECKER_LIGHT, CHECKER_DARK).astype(np.uint8)
    return np.repeat(plane[..., None], 3, axis=2)


def cutout_rgba(image: np.ndarray, alpha: np.ndarray, decontaminate: bool = True) -> np.ndarray:
    """The RGBA cut-out (uint8 HxWx4); ``decontaminate`` re-estimates edge colours without the old background."""
    return cutout(image, alpha, background=None, foreground=decontaminate)


def over(rgba: np.ndarray, background: np.ndarray | str | tuple[int, int, int]) -> np.ndarray:
    """Composite an RGBA cut-out over an RGB image or a colour: ``F * a + B * (1 - a)`` as RGB uint8."""
    return cutout(np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3]),
                  background=background, foreground=False)


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
    alpha = rgba[..., 3]
    if choice == ALPHA:
        return np.repeat(alpha[..., None], 3, axis=2)
    if choice == CHECKERBOARD:
        return over(rgba, checkerboard(*alpha.shape))
    if choice == CUSTOM:
        return over(rgba, custom_colour(custom))
    if choice in _PLAIN:
        return over(rgba, _PLAIN[choice])
    raise ValueError(f"unknown preview background {choice!r}; use one of {', '.join(BACKGROUNDS)}")


def thumbnail(image: np.ndarray, longest: int = 256) -> np.ndarray:
    """Shrink an image (any channel count) so its longer side is at most ``longest`` pixels."""
    import cv2

    h, w = image.shape[:2]
    scale = longest / max(h, w)
    if scale >= 1.0:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
