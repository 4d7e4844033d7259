"""A naive classical matte to hold the fallback against: border flood fill seeding GrabCut.

What one writes in an afternoon with OpenCV: at a 512 px working size, take the median colour of
the image border as the background, flood fill (``cv2.floodFill``, floating range) from every
border pixel near that colour, mark the flooded region background and the rest probable foreground,
run ``cv2.grabCut`` from that mask (it can only take pixels away from the foreground: marking the
flooded region merely probable background scored lower on the shadow and white-on-light cases),
keep its foreground, and scale the binary mask back up. No soft edges, no shadow or hole handling.
GrabCut's colour models start from k-means on OpenCV's global random generator, so it is seeded
first and the result does not depend on what ran before. Used only by ``benchmarks.fallback`` and
the tests; not part of the product.
"""
from __future__ import annotations

import cv2
import numpy as np

WORK_SIDE = 512
TOLERANCE = 4  # per-channel colour step the flood fill follows between neighbouring pixels
NEAR = 24  # a border pixel within this colour distance of the border's median seeds the flood
ITERATIONS = 5


def baseline_alpha(image: np.ndarray) -> np.ndarray:
    """Alpha matte (uint8 HxW, 0 or 255 up to the final resize) of an RGB uint8 image."""
    h, w = image.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    border = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]]).astype(np.float32)
    median = np.median(border, axis=0)
    filled = np.zeros((sh + 2, sw + 2), np.uint8)
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
    frame = [(0, x) for x in range(sw)] + [(sh - 1, x) for x in range(sw)]
    frame += [(y, 0) for y in range(sh)] + [(y, sw - 1) for y in range(sh)]
    for y, x in frame:
        if not filled[y + 1, x + 1] and np.linalg.norm(small[y, x].astype(np.float32) - median) < NEAR:
            cv2.floodFill(small, filled, (x, y), 0, (TOLERANCE,) * 3, (TOLERANCE,) * 3, flags)
    flooded = filled[1:-1, 1:-1] > 0
    if flooded.all() or not flooded.any():
        return np.zeros((h, w), np.uint8)
    seeds = np.where(flooded, cv2.GC_BGD, cv2.GC_PR_FGD).astype(np.uint8)
    cv2.setRNGSeed(0)
    models = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(small, seeds, None, *models, ITERATIONS, cv2.GC_INIT_WITH_MASK)
    mask = np.where(np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)), 255, 0).astype(np.uint8)
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
