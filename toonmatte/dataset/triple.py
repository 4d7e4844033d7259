"""What one save stores: a triple's PNG files, encoded before the store sees them.

``DatasetStore.save_triple`` takes an ``EncodedTriple`` and nothing else about the pixels: the
image (``im``), the corrected alpha (``gt``), the cut-out (``an``: the foreground colours with that
alpha) and, optionally, the model's predicted alpha with the change statistics of ``gt`` against
it. Whatever decides those pixels (estimating the foreground, comparing with the prediction) runs
before the store, so the store only checks and writes files.

``encode_triple`` builds one from arrays. The studio builds one from the PNGs it already keeps of
what it shows (re-encoded only where the matte changed), which is why the bytes are the
representation; the constructor checks that the files are PNGs of the right kinds and of one size.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from toonmatte.dataset.files import encode_png
from toonmatte.errors import ToonmatteError
from toonmatte.evaluation.metrics import change_stats

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GRAY, RGB, RGBA = 0, 2, 6
"""PNG colour types: ``gt`` and the prediction are 8-bit gray, ``im`` 8-bit RGB, ``an`` 8-bit RGBA."""
_KINDS = {"im": (RGB, "8-bit RGB"), "gt": (GRAY, "8-bit gray"), "an": (RGBA, "8-bit RGBA"),
          "prediction": (GRAY, "8-bit gray")}


def png_header(data: bytes, name: str) -> tuple[int, int, int, int]:
    """(height, width, bit depth, colour type) from a PNG's header; one sentence when ``data`` is not a PNG."""
    if not isinstance(data, (bytes, bytearray)) or len(data) < 33 or data[:8] != PNG_SIGNATURE \
            or data[12:16] != b"IHDR":
        raise ToonmatteError(f"The {name} file of the triple is not a PNG; encode it with encode_triple.")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return height, width, depth, colour


@dataclass(frozen=True)
class EncodedTriple:
    """The PNG files of one save, all of one size: ``im`` (RGB), ``gt`` (gray), ``an`` (RGBA), and the
    model's ``prediction`` (gray) with ``changes``, (fraction of pixels whose alpha changed, mean
    absolute change in levels), of ``gt`` against it; both or neither."""

    im: bytes
    gt: bytes
    an: bytes
    prediction: bytes | None = None
    changes: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if (self.prediction is None) != (self.changes is None):
            raise ToonmatteError("A triple's prediction and its change statistics come together; "
                                 "give both or neither.")
        sizes = set()
        for kind, (colour, label) in _KINDS.items():
            data = getattr(self, kind)
            if data is None:
                continue
            height, width, depth, found = png_header(data, kind)
            if (depth, found) != (8, colour):
                raise ToonmatteError(f"The {kind} file of the triple must be an {label} PNG, not bit depth "
                                     f"{depth} colour type {found}.")
            sizes.add((height, width))
        if len(sizes) != 1:
            raise ToonmatteError(f"The files of a triple must be of one size, not {sorted(sizes)}.")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of every file."""
        return png_header(self.gt, "gt")[:2]


def _check_arrays(image: np.ndarray, alpha: np.ndarray, foreground: np.ndarray,
                  predicted_alpha: np.ndarray | None) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ToonmatteError(f"The image must be 8-bit RGB (an HxWx3 uint8 array), not {_describe(image)}.")
    size = image.shape[:2]
    if not isinstance(alpha, np.ndarray) or alpha.dtype != np.uint8 or alpha.shape != size:
        raise ToonmatteError(f"The alpha must be a 2-D uint8 matte of the image's size {size}, not {_describe(alpha)}.")
    if not isinstance(foreground, np.ndarray) or foreground.dtype != np.uint8 or foreground.shape != (*size, 3):
        raise ToonmatteError(f"The foreground must be 8-bit RGB of the image's size {size}, "
                             f"not {_describe(foreground)}.")
    if predicted_alpha is not None and (not isinstance(predicted_alpha, np.ndarray)
                                        or predicted_alpha.dtype != np.uint8 or predicted_alpha.shape != size):
        raise ToonmatteError(f"The predicted alpha must be a 2-D uint8 matte of the image's size {size}, "
                             f"not {_describe(predicted_alpha)}.")


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} of shape {value.shape}"
    return type(value).__name__


def encode_triple(image: np.ndarray, alpha: np.ndarray, foreground: np.ndarray,
                  predicted_alpha: np.ndarray | None = None) -> EncodedTriple:
    """The triple of ``image`` (uint8 HxWx3), its ``alpha`` (uint8 HxW) and the cut-out's ``foreground``
    colours (uint8 HxWx3: the decontaminated colours from ``toonmatte.imaging.foreground``, or the
    image itself), with the model's ``predicted_alpha`` and the change statistics against it when given."""
    _check_arrays(image, alpha, foreground, predicted_alpha)
    prediction = changes = None
    if predicted_alpha is not None:
        prediction, changes = encode_png(predicted_alpha), change_stats(predicted_alpha, alpha)
    return EncodedTriple(encode_png(image), encode_png(alpha), encode_png(np.dstack([foreground, alpha])),
                         prediction, changes)
