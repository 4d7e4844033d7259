"""toonmatte.imaging.png: ordinary PNGs, re-encoded band by band after a change; encode_png for files on disk."""
from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import draw_toon
from toonmatte.imaging.png import BandedPng, encode_png


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image).copy()


def idat(data: bytes) -> bytes:
    """The concatenated IDAT payload of a PNG (checking every chunk's CRC on the way)."""
    out, pos = b"", 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b"IDAT":
            out += body
        pos += 12 + length
    return out


@pytest.mark.parametrize("shape", [(1, 1), (37, 23), (50, 41, 3), (33, 16, 4), (16, 5, 1)])
def test_round_trip(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, shape, dtype=np.uint8)
    array[: shape[0] // 2] = 7  # runs and noise
    data = BandedPng(array, band_rows=4).tobytes()
    assert np.array_equal(decode(data), array.reshape(shape[:2]) if len(shape) == 3 and shape[2] == 1 else array)
    raw = zlib.decompress(idat(data))  # zlib checks the combined Adler-32
    assert len(raw) == shape[0] * (1 + int(np.prod(shape[1:])))


def test_update_reencodes_only_touched_bands_and_matches_a_fresh_encoding() -> None:
    rng = np.random.default_rng(1)
    before = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    encoded = BandedPng(before, band_rows=8)
    after = before.copy()
    after[15] = 0  # last row of band 1: band 2 is filtered against it and must be redone too
    after[33:35, 4:9] = 255
    updated = encoded.update(after, [slice(15, 16), slice(33, 35)])
    assert updated.tobytes() == BandedPng(after, band_rows=8).tobytes()
    assert np.array_equal(decode(updated.tobytes()), after)
    assert encoded.tobytes() == BandedPng(before, band_rows=8).tobytes()  # the original is untouched
    untouched = [i for i in range(5) if i not in (1, 2, 4)]
    assert all(updated._bands[i] is encoded._bands[i] for i in untouched)
    assert updated.update(after, []).tobytes() == updated.tobytes()


def test_non_contiguous_input_and_bad_arrays() -> None:
    base = np.arange(60 * 40 * 3, dtype=np.uint8).reshape(60, 40, 3)
    view = base[::2, ::2]
    assert np.array_equal(decode(BandedPng(view).tobytes()), view)
    with pytest.raises(ValueError):
        BandedPng(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError):
        BandedPng(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError):
        BandedPng(np.zeros((4, 4), np.uint8)).update(np.zeros((5, 4), np.uint8), [])


@pytest.mark.parametrize("shape", [(1, 1), (65, 9), (130, 70, 3), (200, 129, 4)])
def test_encode_png_round_trips_across_band_boundaries(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(2)
    array = rng.integers(0, 256, shape, dtype=np.uint8)
    array[shape[0] // 3:] //= 64  # a few values repeat, so the match search finds something
    data = encode_png(array)
    assert np.array_equal(decode(data), array)
    assert len(zlib.decompress(idat(data))) == shape[0] * (1 + int(np.prod(shape[1:])))


def test_encode_png_writes_smaller_files_than_the_studio_setting() -> None:
    rgb, alpha = draw_toon(512, 384, seed=3)
    for shaded in (rgb, cv2.GaussianBlur(rgb, (0, 0), 2)):  # flat colours, then soft shading
        rgba = np.dstack([shaded, alpha])
        on_disk, interactive = encode_png(rgba), BandedPng(rgba).tobytes()
        assert np.array_equal(decode(on_disk), rgba)
        assert len(on_disk) < 0.85 * len(interactive)
