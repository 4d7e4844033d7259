"""The pointwise halves of blur fusion (Forte and Pitié, ICIP 2021) as compiled loops (numba), one pass
over memory per stage.

``foreground.estimate_foreground`` alternates OpenCV box blurs with pointwise maths. Written with
NumPy, the maths of one pass is some forty array operations (each a sweep over a strip, and a
call that two threads contend for on the GIL); here each stage is one loop over a band of rows
that reads the uint8 inputs and the blurred planes once.

Bit-exactness with the reference rests on three things: every value is float32 (the constants
too, or numba would widen to float64), the operations come in the reference's order, and numba
compiles without ``fastmath``, so LLVM neither reorders nor fuses (no FMA) the float maths.

Speed: within a row, the table look-ups (uint8 -> float32, a gather) are separate loops from the
arithmetic, which runs over contiguous float32 rows so that LLVM vectorizes it; ``error_model=
"numpy"`` drops Python's zero-division check, which would keep the divisions scalar (the
denominators are at least 1e-5 anyway). ``nogil`` lets the caller's threads run bands at the same
time; ``cache`` keeps the compiled code in ``__pycache__`` so only the first process compiles it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np

_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)
_EPS = np.float32(1e-5)
_SCALE = np.float32(255.0)


def _compiled(function: Callable[..., Any]) -> Callable[..., Any]:
    """``numba.njit`` with the on-disk cache when numba finds a writable place for it; a read-only
    install with no writable home has none, and then each process compiles once."""
    try:
        return numba.njit(nogil=True, cache=True, error_model="numpy")(function)
    except RuntimeError:
        return numba.njit(nogil=True, error_model="numpy")(function)


@numba.njit(inline="always")
def _levels_of(levels: np.ndarray, codes: np.ndarray, out: np.ndarray) -> None:
    """out[x] = levels[codes[x]]: the uint8 -> float32 gather, a loop of its own so the arithmetic vectorizes."""
    for x in range(out.shape[0]):
        out[x] = levels[codes[x]]


@_compiled
def prepare_rows(image: np.ndarray, alpha: np.ndarray, levels: np.ndarray, y0: int, y1: int,
                 a_out: np.ndarray, fa: np.ndarray, bb: np.ndarray) -> None:
    """The first pass's blur inputs on rows [y0, y1): a, I*a and I*(1-a) per channel."""
    width = alpha.shape[1]
    om = np.empty(width, np.float32)
    i = np.empty(width, np.float32)
    for y in range(y0, y1):
        a = a_out[y]
        _levels_of(levels, alpha[y], a)
        for x in range(width):
            om[x] = _ONE - a[x]
        for c in range(3):
            _levels_of(levels, image[y, :, c], i)
            f, b = fa[c, y], bb[c, y]
            for x in range(width):
                f[x] = i[x] * a[x]
                b[x] = i[x] * om[x]


@_compiled
def fuse_rows(image: np.ndarray, alpha: np.ndarray, levels: np.ndarray, y0: int, y1: int, blur_a: np.ndarray,
              fa: np.ndarray, bb: np.ndarray, out: np.ndarray, last: bool) -> None:
    """F' = clip(F_ + a (I - a F_ - (1 - a) B_), 0, 1) on rows [y0, y1), with F_ = fa / (box(a) + eps)
    and B_ = bb / (1 - box(a) + eps).

    Not last: overwrite fa, bb with the next pass's blur inputs F'*a and B_*(1-a). Last: write F'
    to ``out`` in 8 bits, truncated like the reference's ``astype(uint8)``.
    """
    width = alpha.shape[1]
    a = np.empty(width, np.float32)
    om = np.empty(width, np.float32)
    d1 = np.empty(width, np.float32)
    d2 = np.empty(width, np.float32)
    i = np.empty(width, np.float32)
    t = np.empty(width, np.float32)
    for y in range(y0, y1):
        ba = blur_a[y]
        _levels_of(levels, alpha[y], a)
        for x in range(width):
            om[x] = _ONE - a[x]
            d1[x] = ba[x] + _EPS
            d2[x] = (_ONE - ba[x]) + _EPS
        for c in range(3):
            _levels_of(levels, image[y, :, c], i)
            f, b = fa[c, y], bb[c, y]
            for x in range(width):
                f[x] = f[x] / d1[x]
                b[x] = b[x] / d2[x]
                v = i[x] - a[x] * f[x]
                v = v - om[x] * b[x]
                v = f[x] + a[x] * v
                t[x] = min(max(v, _ZERO), _ONE)
            if last:
                for x in range(width):
                    out[y, x, c] = np.uint8(t[x] * _SCALE)
            else:
                for x in range(width):
                    f[x] = t[x] * a[x]
                    b[x] = b[x] * om[x]
