"""Brush strokes from the studio's stroke editor (``annotate.canvas``): decode them and apply them to a matte.

The person paints on an editor layer with three brushes whose colours are pure saturated
primaries, far apart in RGB, so the meaning of every painted pixel is recoverable exactly even
when the browser anti-aliases stroke edges: a pixel counts only when its layer alpha is at
least ``MIN_ALPHA`` and every channel lies within ``COLOR_TOLERANCE`` of one brush colour
(blends of two brush colours, and stroke edges less than half covered, are ignored).

Every operation works on bounding-box crops: ``apply_strokes`` changes only painted pixels (all
others keep their alpha bit for bit), ``snap`` only the region its strokes reach, and ``retint``
updates the tinted preview only where the matte changed.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from toonmatte.errors import ToonmatteError

FOREGROUND_COLOR: tuple[int, int, int] = (0, 255, 0)
BACKGROUND_COLOR: tuple[int, int, int] = (255, 0, 0)
EDGE_COLOR: tuple[int, int, int] = (0, 0, 255)
FOREGROUND_HEX = "#00ff00"
BACKGROUND_HEX = "#ff0000"
EDGE_HEX = "#0000ff"

MIN_ALPHA = 128
"""Layer pixels more transparent than this (less than half covered by a stroke) are not painted."""
COLOR_TOLERANCE = 100
"""Per-channel distance within which a painted pixel takes a brush's meaning: the boxes around the
three primaries are far apart, so a 50/50 blend of two brushes (127 off in two channels) is in none."""

KNOWN_FOREGROUND = 250
KNOWN_BACKGROUND = 5
"""Current alpha at or above / at or below these is used as known foreground / background
when the edge band is re-solved."""

EDGE_MARGIN = 16
"""Pixels of context around the edge band given to the matting solver."""
EDGE_TILE = 384
"""The edge band is solved in tiles of at most this size (plus the margin) to bound memory:
pymatting's Laplacian takes about 400 bytes per pixel of the crop."""


@dataclass
class Strokes:
    """Boolean HxW masks of what each brush painted; the three masks never overlap."""

    foreground: np.ndarray
    background: np.ndarray
    edge: np.ndarray

    def any(self) -> bool:
        return bool(self.foreground.any() or self.background.any() or self.edge.any())

    @property
    def shape(self) -> tuple[int, int]:
        return self.foreground.shape

    @classmethod
    def empty(cls, size: tuple[int, int]) -> Strokes:
        return cls(*(np.zeros(size, bool) for _ in range(3)))


def _bbox(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice] | None:
    """Row and column slices of the smallest box holding every True pixel, grown by ``margin``."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0]:rows[-1] + 1].any(axis=0))
    h, w = mask.shape
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, h)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, w)))


def _as_layer(layer: Any) -> np.ndarray | None:
    """A layer as a uint8 HxWx4 array; accepts numpy arrays, PIL images and file paths (the
    editor's ``type`` setting), with or without an alpha channel."""
    if layer is None:
        return None
    if isinstance(layer, (str, Path)):
        from PIL import Image

        with Image.open(layer) as im:
            layer = np.asarray(im.convert("RGBA"))
    elif not isinstance(layer, np.ndarray):  # PIL image
        layer = np.asarray(layer.convert("RGBA"))
    layer = np.asarray(layer)
    if layer.dtype != np.uint8:
        raise ToonmatteError(f"A brush layer must hold 8-bit pixels, not {layer.dtype}; "
                             "send the editor's layers unchanged.")
    if layer.ndim == 2:  # "L" mode: no colour, so nothing can be decoded from it
        raise ToonmatteError("The brush layer has no colour channels; send the strokes as an RGBA image.")
    if layer.shape[2] == 3:  # "RGB" mode drops alpha: transparent pixels come back black
        opaque = np.where(layer.any(axis=2), 255, 0).astype(np.uint8)
        layer = np.dstack([layer, opaque])
    if layer.shape[2] != 4:
        raise ToonmatteError(f"A brush layer must be RGB or RGBA, not {layer.shape[2]} channels; "
                             "send the editor's layers unchanged.")
    return layer


def decode_strokes(layers: list[np.ndarray] | np.ndarray, size: tuple[int, int]) -> Strokes:
    """Decode editor layers (RGBA, bottom first) into stroke masks of ``size`` = (height, width).

    A layer of another size is resized with nearest neighbour; where layers overlap, the upper
    layer's stroke wins.
    """
    if isinstance(layers, np.ndarray) and layers.ndim == 3:
        layers = [layers]
    h, w = size
    masks: list[np.ndarray] | None = None
    for raw in layers:
        layer = _as_layer(raw)
        if layer is None:
            continue
        painted = _brush_masks(layer)
        if layer.shape[:2] != (h, w):  # decoded at the layer's size: the same as resizing the layer first
            painted = [cv2.resize(mask.view(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).view(bool)
                       for mask in painted]
        if masks is None:
            masks = painted
        else:
            covered = painted[0] | painted[1] | painted[2]
            masks = [(mask & ~covered) | new for mask, new in zip(masks, painted)]
    return Strokes(*masks) if masks is not None else Strokes.empty(size)


def _brush_masks(layer: np.ndarray) -> list[np.ndarray]:
    """What each brush painted on an RGBA layer (bool HxW masks: foreground, background, edge).

    Strokes cover a small part of a large layer, so colours are decoded only in the boxes around
    each run of rows holding pixels opaque enough to count.
    """
    masks = [np.zeros(layer.shape[:2], bool) for _ in range(3)]
    # OpenCV's stubs want an array to compare with; a scalar is valid
    opaque = cv2.compare(cv2.extractChannel(layer, 3), MIN_ALPHA, cv2.CMP_GE)  # type: ignore[call-overload]
    painted_rows = cv2.reduce(opaque, 1, cv2.REDUCE_MAX).ravel() > 0
    edges = np.flatnonzero(np.diff(np.concatenate([[False], painted_rows, [False]])))
    for top, bottom in zip(edges[::2], edges[1::2]):
        cols = np.flatnonzero(cv2.reduce(opaque[top:bottom], 0, cv2.REDUCE_MAX).ravel())
        box = slice(int(top), int(bottom)), slice(int(cols[0]), int(cols[-1]) + 1)
        for mask, color in zip(masks, (FOREGROUND_COLOR, BACKGROUND_COLOR, EDGE_COLOR)):
            mask[box] = _brush_pixels(layer[box], color)
    return masks


def _brush_pixels(layer: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """Pixels of an RGBA layer painted with the brush of ``color`` (bool HxW)."""
    lower = np.array([*(max(c - COLOR_TOLERANCE, 0) for c in color), MIN_ALPHA], np.float64)
    upper = np.array([*(min(c + COLOR_TOLERANCE, 255) for c in color), 255], np.float64)
    return cv2.inRange(layer, lower, upper) > 0


def strokes_from_editor(value: dict | None, size: tuple[int, int]) -> Strokes:
    """Decode an editor value ({"layers": [RGBA layers]}, as ``annotate.canvas.editor_value`` gives it)."""
    if not value or not value.get("layers"):
        return Strokes.empty(size)
    return decode_strokes(list(value["layers"]), size)


def _check(image: np.ndarray, alpha: np.ndarray, strokes: Strokes) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ToonmatteError(f"The image must be 8-bit RGB (HxWx3 uint8), not {image.dtype} {image.shape}.")
    if alpha.dtype != np.uint8 or alpha.shape != image.shape[:2]:
        raise ToonmatteError(f"The alpha must be an 8-bit HxW matte the size of the image {image.shape[:2]}, "
                             f"not {alpha.dtype} {alpha.shape}.")
    if strokes.shape != alpha.shape:
        raise ToonmatteError(f"The strokes are {strokes.shape} but the matte is {alpha.shape}; "
                             "decode them at the matte's size.")


def apply_strokes(image: np.ndarray, alpha: np.ndarray, strokes: Strokes) -> np.ndarray:
    """Painted foreground -> 255, background -> 0, edge band -> re-solved by closed-form matting.

    The edge band is solved from the surrounding known pixels (alpha >= ``KNOWN_FOREGROUND`` as
    foreground, <= ``KNOWN_BACKGROUND`` as background, plus the painted foreground/background);
    every pixel not painted keeps its alpha exactly.
    """
    _check(image, alpha, strokes)
    out = alpha.copy()
    hard = strokes.foreground | strokes.background
    box = _bbox(hard)
    if box is not None:
        crop = out[box]
        crop[strokes.foreground[box]] = 255
        crop[strokes.background[box]] = 0
    if strokes.edge.any():
        _solve_edge(image, out, strokes.edge, strokes)
    return out


def _solve_edge(image: np.ndarray, out: np.ndarray, band: np.ndarray, strokes: Strokes) -> None:
    """Re-solve ``out`` in place on ``band`` with closed-form matting, tile by tile."""
    box = _bbox(band)
    if box is None:
        return
    h, w = out.shape
    for top in range(box[0].start, box[0].stop, EDGE_TILE):
        for left in range(box[1].start, box[1].stop, EDGE_TILE):
            core = (slice(top, min(top + EDGE_TILE, box[0].stop)), slice(left, min(left + EDGE_TILE, box[1].stop)))
            band_core = band[core]
            if not band_core.any():
                continue
            crop = (slice(max(core[0].start - EDGE_MARGIN, 0), min(core[0].stop + EDGE_MARGIN, h)),
                    slice(max(core[1].start - EDGE_MARGIN, 0), min(core[1].stop + EDGE_MARGIN, w)))
            solved = _solve_crop(image[crop], out[crop], band[crop], strokes.foreground[crop], strokes.background[crop])
            if solved is None:
                continue  # nothing known around this part of the band: leave it as it is
            inner = (slice(core[0].start - crop[0].start, core[0].stop - crop[0].start),
                     slice(core[1].start - crop[1].start, core[1].stop - crop[1].start))
            target = out[core]
            target[band_core] = solved[inner][band_core]


def _solve_crop(image: np.ndarray, current: np.ndarray, band: np.ndarray, painted_fg: np.ndarray,
                painted_bg: np.ndarray) -> np.ndarray | None:
    """Closed-form alpha (uint8) of one crop, the band and any soft current alpha being unknown."""
    known_fg = ((current >= KNOWN_FOREGROUND) | painted_fg) & ~band
    known_bg = ((current <= KNOWN_BACKGROUND) | painted_bg) & ~band
    if not known_fg.any() and not known_bg.any():
        return None
    if not known_fg.any() or not known_bg.any():  # one side only: the band is all of it
        return np.full(band.shape, 255 if known_fg.any() else 0, np.uint8)
    from pymatting import estimate_alpha_cf

    trimap = np.full(band.shape, 0.5)
    trimap[known_fg] = 1.0
    trimap[known_bg] = 0.0
    alpha = estimate_alpha_cf(image.astype(np.float64) / 255.0, trimap, preconditioner=_preconditioner)
    return np.clip(np.rint(alpha * 255.0), 0, 255).astype(np.uint8)


_ICHOL_SHIFTS = (1e-3, 1e-2, 0.1, 0.5, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)


def _preconditioner(matrix: Any) -> Any:
    """pymatting's incomplete Cholesky, started at a small diagonal shift (an unshifted attempt on a
    matting Laplacian often fails and prints a warning to stdout), else Jacobi."""
    from pymatting import ichol, jacobi

    try:
        return ichol(matrix, shifts=list(_ICHOL_SHIFTS))
    except ValueError:
        return jacobi(matrix)


def snap(image: np.ndarray, alpha: np.ndarray, strokes: Strokes, iterations: int = 4) -> np.ndarray:
    """Turn rough foreground/background strokes into a clean region with GrabCut.

    GrabCut runs on a crop around the strokes, seeded with painted foreground as sure foreground,
    painted background as sure background and the current alpha (>= 128 or not) as probable. A
    pixel changes only where GrabCut flips its side of the current matte inside a connected region
    touching a stroke, or where it was painted; pixels on the side GrabCut agrees with keep
    their (possibly soft) alpha, and edge strokes are applied as in ``apply_strokes``.
    """
    _check(image, alpha, strokes)
    seeds = strokes.foreground | strokes.background
    box = _bbox(seeds)
    if box is None:
        return apply_strokes(image, alpha, strokes)
    margin = max(16, (box[0].stop - box[0].start + box[1].stop - box[1].start) // 8)
    box = _bbox(seeds, margin)
    assert box is not None
    img, cur = image[box], alpha[box]
    fg, bg = strokes.foreground[box], strokes.background[box]
    inside = cur >= 128
    mask = np.where(inside, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    mask[fg] = cv2.GC_FGD
    mask[bg] = cv2.GC_BGD
    decided = _grabcut(img, mask, iterations)
    # GrabCut leaves thin background cracks where an anti-aliased seam between two foreground
    # colours looks like the background (dark hair + light skin ~ gray): close them
    decided = cv2.morphologyEx(decided.astype(np.uint8), cv2.MORPH_CLOSE, _CLOSE_KERNEL) > 0
    decided[bg] = False
    flipped = decided != inside
    flipped[fg | bg] = False
    # keep only flipped regions connected to a stroke
    count, labels = cv2.connectedComponents((flipped | fg | bg).astype(np.uint8), connectivity=8)
    touching = np.zeros(count, bool)
    touching[np.unique(labels[fg | bg])] = True
    touching[0] = False
    flipped &= touching[labels]
    out = alpha.copy()
    crop = out[box]
    crop[flipped & decided] = 255
    crop[flipped & ~decided] = 0
    crop[fg] = 255
    crop[bg] = 0
    # the new region's outline gets soft values from the matting solver, like an edge stroke
    seam = np.zeros_like(strokes.edge)
    seam[box] = (cv2.morphologyEx((crop >= 128).astype(np.uint8), cv2.MORPH_GRADIENT, _SEAM_KERNEL) > 0) \
        & (cv2.dilate(flipped.astype(np.uint8), _SEAM_KERNEL) > 0) & ~(fg | bg)
    _solve_edge(image, out, seam | strokes.edge, strokes)
    return out


_CLOSE_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
_SEAM_KERNEL = np.ones((3, 3), np.uint8)
SNAP_MAX_SIDE = 640
"""GrabCut runs at most at this resolution (longest side of the crop); its decision is scaled back."""


def _grabcut(image: np.ndarray, mask: np.ndarray, iterations: int) -> np.ndarray:
    """GrabCut's foreground decision (bool) for ``mask`` seeds, on a downscaled copy if large."""
    h, w = mask.shape
    scale = min(1.0, SNAP_MAX_SIDE / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small_img = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        small = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    else:
        small_img, small = image, mask.copy()
    is_fg = (small == cv2.GC_FGD) | (small == cv2.GC_PR_FGD)
    if is_fg.all() or not is_fg.any():  # GrabCut needs samples of both sides
        decided = is_fg
    else:
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        # OpenCV's stubs want a rect, which GC_INIT_WITH_MASK does not read: None is valid
        cv2.grabCut(np.ascontiguousarray(small_img), small, None, bgd, fgd, iterations,  # type: ignore[call-overload]
                    cv2.GC_INIT_WITH_MASK)
        decided = (small == cv2.GC_FGD) | (small == cv2.GC_PR_FGD)
    if scale < 1.0:
        decided = cv2.resize(decided.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_LINEAR) >= 128
        decided[mask == cv2.GC_FGD] = True
        decided[mask == cv2.GC_BGD] = False
    return decided


def tint(image: np.ndarray, alpha: np.ndarray, color: Iterable[int] = (255, 0, 255),
         opacity: float = 0.45) -> np.ndarray:
    """RGB preview: the background (1 - alpha) tinted with ``color`` at ``opacity``."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ToonmatteError(f"The image must be 8-bit RGB (HxWx3 uint8), not {image.dtype} {image.shape}.")
    if alpha.shape != image.shape[:2]:
        raise ToonmatteError(f"The alpha {alpha.shape} must be the size of the image {image.shape[:2]}.")
    weight = (255 - alpha).astype(np.float32)
    weight *= float(opacity) / 255.0
    solid = np.empty_like(image)
    solid[...] = np.asarray(tuple(color), np.uint8)
    return cv2.blendLinear(np.ascontiguousarray(image), solid, 1.0 - weight, weight)


def retint(preview: np.ndarray, image: np.ndarray, before: np.ndarray, after: np.ndarray,
           color: Iterable[int] = (255, 0, 255), opacity: float = 0.45) -> np.ndarray:
    """``tint(image, after)`` computed from ``preview`` = ``tint(image, before)`` by re-tinting only
    the bounding box of the pixels whose alpha changed (a new array; ``preview`` is not modified)."""
    if not (preview.shape == image.shape and before.shape == after.shape == image.shape[:2]):
        raise ToonmatteError("The preview, image and mattes must all have the same size to update the tint.")
    out = preview.copy()
    box = _bbox(cv2.compare(before, after, cv2.CMP_NE) > 0)
    if box is not None:
        out[box] = tint(image[box], after[box], color, opacity)
    return out
