"""Classical matting for characters on plain backgrounds, used when no model weights are available.

The ToonOut domain is a drawn character on a plain (mostly gray) backdrop, often with a gentle
gradient, a vignette or a floor shadow. The backdrop is smooth and the character is bounded by
drawn outlines, so:

1. Backdrop: the dominant colour of the image border (robust to a character touching the border),
   fitted as a smooth colour surface, with its noise level.
2. Segmentation at a working size: the connected region, reached from the border, of pixels that
   show the backdrop colour or a shade of it (a shadow, soft or cel-shaded, or a lit floor) away
   from outlines; again against the local colour of what was reached; enclosed regions that show
   the local backdrop colour (the gap between an arm and the body) are backdrop too; specks are
   dropped.
3. GrabCut seeded from that segmentation (probable near the outline, definite elsewhere) settles
   the outline; OpenCV's random generator is seeded first, so the same image gives the same matte.
4. Soft edges at full size: only a narrow band along the outline, beside the backdrop (plus the
   fine details where the full-size backdrop region disagrees with the working-size mask), is
   re-solved, by known-background matting: each band pixel is explained as
   ``alpha * F + (1 - alpha) * B``, with B the local backdrop colour and F one of the solid
   foreground colours beside it (the one that reconstructs the pixel best, preferring the lower
   alpha among equally good ones). That recovers the anti-aliased coverage of drawn outlines
   without a global solve.

Without a plain border (busy backgrounds) it degrades to GrabCut from a centred ellipse.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from toonmatte.errors import BadImageError

WORK_SIDE = 512  # long side of the working image for segmentation and GrabCut
RING = 0.01  # border ring width, as a fraction of the long side
MIN_AREA = 2e-4  # foreground components smaller than this fraction of the image are specks
HOLE_AREA = 5e-5  # enclosed backdrop-coloured regions at least this large become holes
PLAIN_COVERAGE = 0.3  # share of the border the backdrop colour must explain to count as plain
MIN_GRABCUT_SIDE = 32  # smaller working images skip GrabCut (too few pixels for its colour models)
SOLID = 2.5  # band pixels this many thresholds from the backdrop are candidate foreground colours
SHADES = (0.45, 1.6)  # shading of the backdrop (shadows, a lit floor) scales its colour by a factor in this range
OUTLINE_WIDTH = 2  # widest outline (working-size pixels) told apart from the edge of a shadow
VALLEY = 0.03  # an outline is darker than both its sides by this share of the backdrop's brightness (plus noise)
GENTLE = 0.08  # largest colour range in a 3x3 window of gradual lighting, as a share of the backdrop's brightness


@dataclass
class Backdrop:
    """The plain background's colour at every pixel of the working image and its noise level."""

    colour: np.ndarray  # (H, W, 3) float32 smooth surface fitted to the border
    noise: float  # 99th percentile colour distance of border backdrop pixels to ``colour``
    plain: bool  # whether the border is dominated by one smoothly varying colour

    @property
    def threshold(self) -> float:
        """Colour distance to the backdrop above which a pixel cannot be backdrop."""
        return float(np.clip(2.0 * self.noise + 4.0, 10.0, 48.0))


def _features(ys: np.ndarray, xs: np.ndarray, height: int, width: int) -> np.ndarray:
    v = ys * (2.0 / max(height - 1, 1)) - 1.0
    u = xs * (2.0 / max(width - 1, 1)) - 1.0
    return np.stack([np.ones_like(u), u, v, u * u, v * v, u * v], axis=-1).astype(np.float32)


def _fit_surface(features: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Least-squares quadratic colour surface (6x3 coefficients), lightly ridge-regularised."""
    ridge = 1e-3 * len(features) * np.eye(features.shape[1], dtype=np.float32)
    ridge[0, 0] = 0.0
    return np.linalg.solve(features.T @ features + ridge, features.T @ colours)


def _ring_mask(shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    ring = max(1, round(RING * max(h, w)))
    mask = np.ones((h, w), bool)
    mask[ring:h - ring, ring:w - ring] = False
    return mask


def _distance(image: np.ndarray, colour: np.ndarray) -> np.ndarray:
    diff = image.astype(np.float32) - colour
    return np.sqrt(np.einsum("...c,...c->...", diff, diff))


def estimate_backdrop(small: np.ndarray, smooth: np.ndarray) -> Backdrop:
    """Fit the backdrop to the border ring: its mode colour, then a quadratic surface grown from the
    pixels near that colour to those near the fit, so gradients are followed and characters left out."""
    h, w = small.shape[:2]
    ring = _ring_mask((h, w))
    ys, xs = np.nonzero(ring)
    colours = small[ys, xs].astype(np.float32)
    keys = (colours // 16).astype(np.int32) @ np.array([256, 16, 1])
    mode = colours[keys == np.bincount(keys).argmax()].mean(0)
    features = _features(ys.astype(np.float32), xs.astype(np.float32), h, w)
    coefficients = np.zeros((6, 3), np.float32)
    coefficients[0] = mode
    residual = np.linalg.norm(colours - mode, axis=1)
    inliers = residual < 12.0
    for _ in range(10):  # grow along gradients from the mode; a character's jump in colour stays out
        if inliers.sum() < 12:
            break
        coefficients = _fit_surface(features[inliers], colours[inliers])
        residual = np.linalg.norm(colours - features @ coefficients, axis=1)
        grown = residual < max(8.0, 3.0 * 1.4826 * float(np.median(residual[inliers])))
        if (grown == inliers).all():
            break
        inliers = grown
    inliers = residual < 8.0
    noise = float(np.percentile(residual[inliers], 99)) if inliers.any() else 0.0
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    surface = (_features(gy, gx, h, w) @ coefficients).astype(np.float32)
    return Backdrop(surface, noise, bool(inliers.mean() >= PLAIN_COVERAGE))


def _drop_specks(mask: np.ndarray) -> np.ndarray:
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= max(4, MIN_AREA * mask.size)
    keep[0] = False
    return keep[labels]


def _inside(region: np.ndarray) -> np.ndarray:
    """``region`` less a 2-pixel rim: backdrop pixels clear of anti-aliased edges."""
    return cv2.erode(region.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0


def local_backdrop(image: np.ndarray, backdrop: np.ndarray, fallback: np.ndarray, radius: int) -> np.ndarray:
    """Mean colour of the backdrop pixels near each pixel (normalized box filter), else ``fallback``."""
    weights = backdrop.astype(np.float32)
    size = (2 * radius + 1, 2 * radius + 1)
    total = cv2.blur(image.astype(np.float32) * weights[..., None], size)
    coverage = cv2.blur(weights, size)[..., None]
    return np.where(coverage > 0.02, total / np.maximum(coverage, 1e-6), fallback).astype(np.float32)


def backdrop_shades(small: np.ndarray, smooth: np.ndarray, backdrop: np.ndarray, threshold: float,
                    noise: float) -> np.ndarray:
    """Pixels that look like the backdrop in a shadow or under brighter light (a floor lit more
    than the wall behind): a shade of the backdrop colour (same chroma), not on or beside an
    outline, and if lighter than the backdrop, changing gently.

    An outline is a thin line darker than both its sides (found as a morphological black-hat of
    ``small``); a shadow's edge, soft or cel-shaded, is a gradient or a plain step from the
    backdrop to a darker shade of it. So a region reached only across an outline (a grey, white
    or dark character) is not taken for backdrop, while shadows are. Light falls off gradually,
    whereas white things (hair, bones, a plate) often meet a light backdrop at a plain step."""
    image = smooth.astype(np.float32)
    shade = np.einsum("...c,...c->...", image, backdrop) / np.maximum(np.einsum("...c,...c->...",
                                                                                backdrop, backdrop), 1.0)
    residual = _distance(image, backdrop * shade[..., None])
    brightness = backdrop.mean(2)
    square = np.ones((3, 3), np.uint8)
    line = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * OUTLINE_WIDTH + 1,) * 2)
    valley = cv2.morphologyEx(small, cv2.MORPH_BLACKHAT, line).max(2)
    outline = cv2.dilate((valley > VALLEY * brightness + noise).astype(np.uint8), square) > 0
    change = (cv2.dilate(smooth, square).astype(np.int16) - cv2.erode(smooth, square)).max(2)
    darker = (shade > SHADES[0]) & (shade <= 1.0)
    lighter = (shade > 1.0) & (shade < SHADES[1]) & (change <= GENTLE * brightness + noise)
    return (darker | lighter) & (residual < threshold) & ~outline


def segment(small: np.ndarray, smooth: np.ndarray, backdrop: Backdrop) -> np.ndarray:
    """Foreground mask at the working size: what the backdrop does not reach from the border ring.

    Twice: against the fitted backdrop, then against the local colour of the backdrop reached
    (a floor lit brighter than the fit predicts, with a shadow on it). Enclosed regions that show
    the nearby backdrop colour (the gap between an arm and the body) are backdrop too, if wider
    than a line: between a grey outline and white clothing on a light grey, the anti-aliased
    pixels can show the backdrop's very colour. Specks are dropped."""
    h, w = small.shape[:2]
    near = _distance(small, backdrop.colour) < backdrop.threshold
    flooded = backdrop_region(small, smooth, backdrop.colour, backdrop.threshold, backdrop.noise, near,
                              _ring_mask((h, w)) & near)
    if flooded.any() and not flooded.all():
        radius = max(8, max(h, w) // 16)
        local = local_backdrop(smooth, _inside(flooded), backdrop.colour, radius)
        near = _distance(small, local) < backdrop.threshold
        flooded |= backdrop_region(small, smooth, local, backdrop.threshold, backdrop.noise, near, flooded)
        enclosed = (near & ~flooded).astype(np.uint8)
        count, labels = cv2.connectedComponents(enclosed, connectivity=4)
        local = local_backdrop(smooth, _inside(flooded), backdrop.colour, radius)
        close = (labels > 0) & (_distance(smooth, local) < max(5.0, backdrop.noise + 2.0))
        wide = cv2.erode(enclosed, np.ones((2, 2), np.uint8)) > 0  # more than a line of pixels
        holes = (np.bincount(labels[close], minlength=count) >= max(1.0, HOLE_AREA * h * w)) & (
            np.bincount(labels[wide], minlength=count) > 0)
        holes[0] = False
        flooded |= holes[labels]
    return _drop_specks(~flooded)


def backdrop_region(image: np.ndarray, smooth: np.ndarray, background: np.ndarray, threshold: float, noise: float,
                    near: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The backdrop's connected region reached from ``seeds``: pixels ``near`` the ``background``
    colour or a shade of it (:func:`backdrop_shades`).

    A fixed colour range, not a flood fill's floating one: along a slightly slanted anti-aliased
    outline the pixels change colour a little from one row to the next, and a floating range
    walks along it into the character."""
    candidates = near | backdrop_shades(image, smooth, background, threshold, noise)
    count, labels = cv2.connectedComponents(candidates.astype(np.uint8), connectivity=4)
    reached = np.zeros(count, bool)
    reached[labels[seeds & candidates]] = True
    reached[0] = False
    return reached[labels]


def fine_foreground(image: np.ndarray, coarse: np.ndarray, background: np.ndarray, threshold: float,
                    noise: float) -> np.ndarray:
    """Full-size foreground: what the backdrop, reached from its pixels well away from the coarse
    mask, leaves out."""
    h, w = coarse.shape
    smooth = cv2.GaussianBlur(image, (3, 3), 0)
    margin = max(3, round(max(h, w) / WORK_SIDE) * 2 + 1)
    calm = cv2.dilate(coarse.astype(np.uint8), np.ones((margin, margin), np.uint8)) == 0
    near = _distance(image, background) < threshold
    flooded = backdrop_region(image, smooth, background, threshold, noise, near, calm)
    if not flooded.any():
        return coarse
    return _drop_specks(~flooded)


def _grabcut(small: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    foreground = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD))
    if foreground.all() or not foreground.any():
        return foreground
    models = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # its colour models start from k-means on OpenCV's global generator: same input, same matte
    # OpenCV's stubs want a rect, which GC_INIT_WITH_MASK does not read: None is valid
    cv2.grabCut(small, seeds, None, *models, 2, cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]
    return np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD))


def refine_outline(small: np.ndarray, mask: np.ndarray, band: int = 2) -> np.ndarray:
    """GrabCut on the working image, left free only within ``band`` pixels of the outline."""
    mask8 = mask.astype(np.uint8)
    kernel = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
    free = cv2.dilate(mask8, kernel) != cv2.erode(mask8, kernel)
    seeds = np.where(mask, cv2.GC_FGD, cv2.GC_BGD).astype(np.uint8)
    seeds[free & mask] = cv2.GC_PR_FGD
    seeds[free & ~mask] = cv2.GC_PR_BGD
    return _drop_specks(_grabcut(small, seeds))


def soft_edges(image: np.ndarray, hard: np.ndarray, background: np.ndarray, threshold: float,
               noise: float, half_width: int, unsure: np.ndarray | None = None) -> np.ndarray:
    """Alpha in [0, 1]: ``hard`` away from the outline, known-background matting within
    ``half_width`` pixels of it and around ``unsure`` pixels. ``background`` is the backdrop colour
    at every pixel.

    Only pixels beside the backdrop are re-solved: pixels showing the backdrop colour connected to
    such pixels outside ``hard``, and their neighbours. A drawn edge is about a pixel wide, and a
    pixel between two foreground colours (a grey outline and white clothing on a light grey) can
    read as a mix of one of them with the backdrop, or show the backdrop's very colour."""
    alpha = hard.astype(np.float32)
    hard8 = hard.astype(np.uint8)
    kernel = np.ones((2 * half_width + 1, 2 * half_width + 1), np.uint8)
    band = cv2.dilate(hard8, kernel) != cv2.erode(hard8, kernel)
    if unsure is not None and unsure.sum() <= band.sum():  # small details only, not a failed flood
        band |= cv2.dilate(unsure.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    distance = _distance(image, background)
    shows = (distance < threshold) & (band | ~hard)  # the backdrop colour, in the band or outside
    count, labels = cv2.connectedComponents(shows.astype(np.uint8), connectivity=4)
    outside = np.zeros(count, bool)
    outside[labels[shows & ~hard]] = True  # reaching outside ``hard``: the backdrop, not a coincidence
    outside[0] = False
    band &= cv2.dilate(outside[labels].astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    by, bx = np.nonzero(band)
    if by.size == 0:
        return alpha
    r = min(3, max(2, half_width - 1))  # candidate window radius
    w = hard.shape[1]
    # solid foreground colours: clearly not backdrop (well above the threshold: JPEG chroma
    # subsampling leaves faint colour fringes just outside saturated outlines)
    solid = distance >= SOLID * threshold
    colours = cv2.copyMakeBorder(image, r, r, r, r, cv2.BORDER_REPLICATE).reshape(-1, 3).astype(np.float32)
    solid = cv2.copyMakeBorder(solid.astype(np.uint8), r, r, r, r, cv2.BORDER_CONSTANT, value=0).ravel() > 0
    stride = w + 2 * r
    index = (by + r) * stride + (bx + r)
    back = background[by, bx]
    pixel = colours[index] - back  # I - B
    pixel_sq = np.einsum("nc,nc->n", pixel, pixel)
    margin = max(noise, 2.0)  # colour deviations this small are noise, not coverage
    offsets = [dy * stride + dx for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
    alphas = np.empty((len(offsets), by.size), np.float32)
    errors = np.full((len(offsets), by.size), np.inf, np.float32)
    for k, offset in enumerate(offsets):
        neighbour = index + offset
        towards = colours[neighbour] - back  # F - B
        reach_sq = np.einsum("nc,nc->n", towards, towards)
        reach = np.sqrt(reach_sq)
        along = np.einsum("nc,nc->n", pixel, towards)  # (I - B).(F - B)
        a = np.clip((along / np.maximum(reach, 1e-6) - margin) / np.maximum(reach - 2.0 * margin, 1e-6), 0.0, 1.0)
        alphas[k] = a
        usable = solid[neighbour]
        # |(I - B) - a (F - B)|^2, expanded
        errors[k, usable] = (pixel_sq - 2.0 * a * along + a * a * reach_sq)[usable]
    errors = np.sqrt(np.maximum(errors, 0.0))
    # among the candidates that explain the pixel about as well as the best one, the lowest alpha:
    # a mixed pixel is also "explained" by a solid neighbour of its own mixed colour with alpha 1
    good = errors <= errors.min(0) + max(2.0 * noise, 3.0)
    best = np.where(good, alphas, np.inf).min(0)
    unexplained = ~np.isfinite(best)
    best[unexplained] = alpha[by, bx][unexplained]
    alpha[by, bx] = best
    # a band pixel may not stand out above all of its eight neighbours (isolated specks)
    ring = np.ones((3, 3), np.uint8)
    ring[1, 1] = 0
    alpha[by, bx] = np.minimum(best, cv2.dilate(alpha, ring)[by, bx])
    return alpha


def _check(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise BadImageError(f"The image must be a non-empty uint8 HxWx3 RGB array, got {image.dtype} {image.shape}.")
    return np.ascontiguousarray(image)


def _centred_grabcut(small: np.ndarray) -> np.ndarray:
    """No plain backdrop: GrabCut from the usual guess for a subject in frame, a centred ellipse
    (half the width, four fifths of the height) probably foreground and the rest of the frame
    probably background, its outermost twentieth background. Seeding the whole frame as probable
    foreground instead left GrabCut's colour models to chance on a textured backdrop (IoU 0.16 to
    0.91 with the random generator's seed on tests/test_fallback.py's busy scene)."""
    h, w = small.shape[:2]
    seeds = np.full((h, w), cv2.GC_BGD, np.uint8)
    seeds[h // 20:h - h // 20, w // 20:w - w // 20] = cv2.GC_PR_BGD
    centre = np.zeros((h, w), np.uint8)
    cv2.ellipse(centre, (w // 2, h // 2), (max(1, w // 4), max(1, h * 2 // 5)), 0, 0, 360, 1, -1)
    seeds[(centre > 0) & (seeds == cv2.GC_PR_BGD)] = cv2.GC_PR_FGD
    return _drop_specks(_grabcut(small, seeds))


def fallback_alpha(image: np.ndarray) -> np.ndarray:
    """Alpha matte (uint8 HxW) of the subject of an RGB uint8 image, without a neural network."""
    image = _check(image)
    h, w = image.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    smooth = cv2.GaussianBlur(small, (3, 3), 0)
    backdrop = estimate_backdrop(small, smooth)
    grabcut = min(small.shape[:2]) >= MIN_GRABCUT_SIDE
    if not backdrop.plain:
        mask = _centred_grabcut(small) if grabcut else np.zeros(small.shape[:2], bool)
        return cv2.resize(np.where(mask, 255, 0).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    mask = segment(small, smooth, backdrop)
    if grabcut:
        mask = refine_outline(small, mask)
    if not mask.any():
        return np.zeros((h, w), np.uint8)
    clear = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0  # backdrop off the outline
    near = local_backdrop(small, clear, backdrop.colour, max(4, max(small.shape[:2]) // 32))
    unsure = None
    if scale < 1:
        mask = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
        near = cv2.resize(near, (w, h), interpolation=cv2.INTER_LINEAR)
        # details finer than the working size (fingers, strands): where the full-size backdrop region disagrees
        unsure = fine_foreground(image, mask, near, backdrop.threshold, backdrop.noise) != mask
    half_width = max(2, int(np.ceil(1.0 / scale)) + 1)
    alpha = soft_edges(image, mask, near, backdrop.threshold, backdrop.noise, half_width, unsure)
    return np.rint(alpha * 255.0).astype(np.uint8)
