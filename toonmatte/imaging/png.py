"""Fast PNG encoding: bands of rows compressed on their own, in parallel, and re-encoded only where changed.

Two uses. ``encode_png`` writes the PNGs kept on disk (the command line's mattes and cut-outs, the
library's ``write_png_atomic``): zlib level 6 on bands compressed on a few threads, which on anime
cut-outs is several times quicker than Pillow's defaults (level 6, adaptive filters, one thread) for
files of about the same size (docs/performance.md). ``BandedPng`` at its defaults (level 1,
run-length matching) serves the studio, which sends the editor a full-resolution PNG after every
Apply (Gradio's editor takes images as files), and compressing a large PNG on one core would
delay every stroke. Strokes change a few hundred rows, so ``BandedPng`` keeps each band of
``BAND_ROWS`` rows as its own deflate segment (fresh dictionary, byte-aligned by a full flush)
and, after a change, re-compresses only the bands it touched; bands are compressed on a few
threads (zlib releases the GIL) by zlib-ng, which writes the same bytes as zlib here, sooner.
Every row uses PNG's "Up" filter, so a band depends only on its rows and the row above it. The
output is an ordinary PNG any decoder reads.
"""
from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from zlib_ng import zlib_ng as zlib

BAND_ROWS = 16
LEVEL = 1
STRATEGY = zlib.Z_RLE
"""zlib level 1 with run-length matching only (``Z_RLE``): several times quicker than zlib's defaults,
for files somewhat larger than Pillow's defaults on anime cut-outs (docs/performance.md)."""
FILE_LEVEL, FILE_BAND_ROWS = 6, 64
"""For files kept on disk: level 6 with zlib's full match search, smaller files than ``LEVEL``;
64-row bands lose less to the dictionary reset at each band."""
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type (gray, RGB, RGBA)
_UP = 2
_ADLER_BASE = 65521
_FINAL_BLOCK = b"\x03\x00"  # an empty final block with fixed codes: ends a stream of flushed segments


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="toonmatte-png")


def _adler_combine(first: int, second: int, second_length: int) -> int:
    """Adler-32 of two byte strings joined, from their checksums (A = 1 + sum of bytes, B = sum of A)."""
    a1, b1 = first & 0xFFFF, first >> 16
    a2, b2 = second & 0xFFFF, second >> 16
    a = (a1 + a2 - 1) % _ADLER_BASE
    b = (b1 + b2 + second_length * (a1 - 1)) % _ADLER_BASE
    return (b << 16) | a


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


@dataclass(frozen=True)
class _Band:
    data: bytes  # deflate segment ending in a full flush
    adler: int  # Adler-32 of the band's filtered bytes
    length: int  # number of filtered bytes


class BandedPng:
    """An 8-bit gray, RGB or RGBA image as PNG, re-encodable band by band (``update``)."""

    def __init__(self, image: np.ndarray, *, level: int = LEVEL, strategy: int = STRATEGY,
                 band_rows: int = BAND_ROWS) -> None:
        image = _check(image)
        self.shape = image.shape
        self.level, self.strategy, self.band_rows = level, strategy, band_rows
        height = self.shape[0]
        self._bands = self._encode(image, range(-(-height // band_rows)), [None] * -(-height // band_rows))

    def update(self, image: np.ndarray, rows: Iterable[slice]) -> BandedPng:
        """The PNG of ``image``, which differs from this one's image only in ``rows``: a new object
        sharing the unchanged bands."""
        image = _check(image)
        if image.shape != self.shape:
            raise ValueError(f"update needs an image of shape {self.shape}, not {image.shape}")
        height = self.shape[0]
        touched: set[int] = set()
        for span in rows:
            start, stop, _ = span.indices(height)
            if stop <= start:
                continue
            last = min(stop, height - 1)  # the row below a change is filtered against it
            touched.update(range(start // self.band_rows, last // self.band_rows + 1))
        new = object.__new__(BandedPng)
        new.shape, new.level, new.strategy, new.band_rows = self.shape, self.level, self.strategy, self.band_rows
        new._bands = new._encode(image, sorted(touched), list(self._bands))
        return new

    def _encode(self, image: np.ndarray, indices: Iterable[int], bands: list[_Band | None]) -> list[_Band]:
        flat = image.reshape(self.shape[0], -1)
        indices = list(indices)
        if len(indices) > 1:
            done = _pool().map(lambda i: self._encode_band(flat, i), indices)
        else:
            done = (self._encode_band(flat, i) for i in indices)
        for index, band in zip(indices, done):
            bands[index] = band
        return bands  # type: ignore[return-value]

    def _encode_band(self, flat: np.ndarray, index: int) -> _Band:
        top = index * self.band_rows
        filtered = up_filtered(flat[top:top + self.band_rows], flat[top - 1] if top else None)
        compressor = zlib.compressobj(self.level, zlib.DEFLATED, -15, 8, self.strategy)
        data = compressor.compress(filtered) + compressor.flush(zlib.Z_FULL_FLUSH)
        return _Band(data, zlib.adler32(filtered), filtered.size)

    def tobytes(self) -> bytes:
        adler, stream = 1, [b"\x78\x01"]
        for band in self._bands:
            adler = _adler_combine(adler, band.adler, band.length)
            stream.append(band.data)
        stream += [_FINAL_BLOCK, struct.pack(">I", adler)]
        return png_file(self.shape, b"".join(stream))


def encode_png(image: np.ndarray) -> bytes:
    """The PNG file of a uint8 HxW, HxWx3 or HxWx4 image, compressed for keeping (see the module's doc)."""
    return BandedPng(image, level=FILE_LEVEL, strategy=zlib.Z_DEFAULT_STRATEGY, band_rows=FILE_BAND_ROWS).tobytes()


def up_filtered(rows: np.ndarray, above: np.ndarray | None) -> np.ndarray:
    """PNG scanlines of ``rows`` (H x row bytes), each with the "Up" filter: its filter-type byte, then
    its difference from the row before (``above`` for the first row; None: the image's top row)."""
    filtered = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    filtered[:, 0] = _UP
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # uint8 arithmetic wraps modulo 256, as PNG wants
    if above is None:
        filtered[0, 1:] = rows[0]
    else:
        np.subtract(rows[0], above, out=filtered[0, 1:])
    return filtered


def png_file(shape: tuple[int, ...], stream: bytes) -> bytes:
    """The PNG file of an 8-bit image of ``shape`` (HxW or HxWxC) whose scanlines compress to the zlib ``stream``."""
    channels = 1 if len(shape) == 2 else shape[2]
    header = struct.pack(">IIBBBBB", shape[1], shape[0], 8, _COLOUR_TYPES[channels], 0, 0, 0)
    return b"".join([_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", stream), _chunk(b"IEND", b"")])


def _check(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0 or not (
            image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))):
        raise ValueError("BandedPng needs a non-empty uint8 HxW, HxWx3 or HxWx4 array, "
                         f"not {getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}")
    return np.ascontiguousarray(image)
