"""toonmatte.imaging.imageio: every input kind and colour mode, bad inputs, atomic PNG writes, input expansion."""
from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURES, draw_toon
from toonmatte.errors import BadImageError, ToonmatteError
from toonmatte.imaging import imageio
from toonmatte.imaging.imageio import (
    GRAY,
    MIN_SIDE,
    LoadedImage,
    collect_inputs,
    load_image,
    load_mask,
    write_png_atomic,
)

RED, BLUE = (255, 0, 0), (0, 0, 255)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise(height: int = 16, width: int = 16, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def assert_one_sentence(error: pytest.ExceptionInfo, *needles: str) -> str:
    message = str(error.value)
    assert "\n" not in message and message.endswith("."), message
    assert message.count(". ") == 0, message  # one sentence (no "x. Y" inside)
    for needle in needles:
        assert needle in message, message
    return message


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming width x height, then one tiny IDAT: no real pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 16)) + png_chunk(b"IEND", b""))


# ---------------------------------------------------------------- sources

def test_every_source_kind_gives_the_same_pixels(tmp_path):
    pixels = noise()
    path = tmp_path / "shot.png"
    Image.fromarray(pixels).save(path)
    loaded = [load_image(path), load_image(str(path)), load_image(path.read_bytes()),
              load_image(bytearray(path.read_bytes())), load_image(Image.fromarray(pixels)), load_image(pixels)]
    for result in loaded:
        assert isinstance(result, LoadedImage)
        assert result.rgb.dtype == np.uint8 and result.rgb.shape == (16, 16, 3)
        np.testing.assert_array_equal(result.rgb, pixels)
        assert result.alpha is None
    assert [r.name for r in loaded] == ["shot", "shot", "", "", "", ""]


def test_pil_image_opened_from_a_file_keeps_its_stem_and_stays_usable(tmp_path):
    path = tmp_path / "hero.png"
    Image.fromarray(noise(channels=4)).save(path)
    with Image.open(path) as image:
        result = load_image(image)
        assert image.mode == "RGBA" and image.size == (16, 16)  # caller's image untouched
    assert result.name == "hero"
    assert result.alpha is not None


def test_progressive_jpeg_file_loads():
    path = FIXTURES / "images" / "toon.jpg"
    result = load_image(path)
    with Image.open(path) as image:
        assert image.format == "JPEG" and image.info.get("progressive")
        reference = np.asarray(image.convert("RGB"))
    assert result.rgb.dtype == np.uint8 and result.rgb.shape == (320, 240, 3) and result.alpha is None
    np.testing.assert_array_equal(result.rgb, reference)
    assert result.name == "toon"


def test_toon_roundtrip_through_png_is_exact(tmp_path, toon):
    rgb, alpha = toon
    path = tmp_path / "toon.png"
    write_png_atomic(path, np.dstack([rgb, alpha]))
    result = load_image(path)
    np.testing.assert_array_equal(result.alpha, alpha)
    opaque = alpha == 255
    np.testing.assert_array_equal(result.rgb[opaque], rgb[opaque])
    np.testing.assert_array_equal(result.rgb[alpha == 0], np.full(((alpha == 0).sum(), 3), 128, np.uint8))


# ---------------------------------------------------------------- transparency

def rgba_red_row() -> np.ndarray:
    """Red pixels whose alpha is 0, 255, 128 and 64 along the first row."""
    pixels = np.zeros((8, 8, 4), np.uint8)
    pixels[..., 0] = 255
    pixels[..., 3] = 255
    pixels[0, :4, 3] = (0, 255, 128, 64)
    return pixels


def test_rgba_is_composited_onto_gray_with_rounding():
    result = load_image(encode(Image.fromarray(rgba_red_row()), "PNG"))
    # round((255*a + 128*(255-a)) / 255) and round(128*(255-a) / 255)
    np.testing.assert_array_equal(result.rgb[0, :4], [(128, 128, 128), (255, 0, 0), (192, 64, 64), (160, 96, 96)])
    np.testing.assert_array_equal(result.alpha[0, :4], (0, 255, 128, 64))


def test_background_colour_is_honoured():
    result = load_image(rgba_red_row(), background=(255, 255, 255))
    np.testing.assert_array_equal(result.rgb[0, :3], [(255, 255, 255), (255, 0, 0), (255, 127, 127)])


def test_gray_with_alpha_modes():
    la = Image.fromarray(np.dstack([np.full((8, 8), 200, np.uint8), np.full((8, 8), 0, np.uint8)]), "LA")
    result = load_image(la)
    assert (result.rgb == 128).all() and (result.alpha == 0).all()
    premultiplied = Image.new("La", (8, 8), (100, 128))  # 100 premultiplied by 128/255 -> ~199
    result = load_image(premultiplied)
    assert (result.alpha == 128).all()
    assert abs(int(result.rgb[0, 0, 0]) - round((199 * 128 + 128 * 127) / 255)) <= 1


def test_premultiplied_rgba():
    result = load_image(Image.new("RGBa", (8, 8), (50, 0, 0, 128)))  # straight red ~99
    assert (result.alpha == 128).all()
    assert abs(int(result.rgb[0, 0, 0]) - round((99 * 128 + 128 * 127) / 255)) <= 1


def palette_image() -> Image.Image:
    indices = np.zeros((8, 8), np.uint8)
    indices[:, 4:] = 1
    image = Image.fromarray(indices, "L").convert("P")
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    return image


def test_palette_without_transparency():
    result = load_image(encode(palette_image(), "PNG"))
    assert result.alpha is None
    assert tuple(result.rgb[0, 0]) == RED and tuple(result.rgb[0, 7]) == BLUE


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_index(fmt):
    data = encode(palette_image(), fmt, transparency=1)
    result = load_image(data)
    assert tuple(result.rgb[0, 0]) == RED and tuple(result.rgb[0, 7]) == GRAY
    assert result.alpha[0, 0] == 255 and result.alpha[0, 7] == 0


def test_palette_with_alpha_values_in_trns():
    image = palette_image()
    image.info["transparency"] = bytes([255, 128])  # per-entry alpha (PNG tRNS)
    result = load_image(encode(image, "PNG"))
    assert result.alpha[0, 0] == 255 and result.alpha[0, 7] == 128
    assert tuple(result.rgb[0, 7]) == (64, 64, 192)


def test_rgb_colour_key_transparency_becomes_alpha():
    pixels = np.zeros((8, 8, 3), np.uint8)
    pixels[:, :4] = RED
    data = encode(Image.fromarray(pixels), "PNG", transparency=(0, 0, 0))
    result = load_image(data)
    assert result.alpha[0, 0] == 255 and result.alpha[0, 7] == 0
    assert tuple(result.rgb[0, 0]) == RED and tuple(result.rgb[0, 7]) == GRAY


def test_opaque_rgba_still_reports_its_alpha():
    pixels = noise(channels=4)
    pixels[..., 3] = 255
    result = load_image(pixels)
    np.testing.assert_array_equal(result.rgb, pixels[..., :3])
    assert result.alpha is not None and (result.alpha == 255).all()


# ---------------------------------------------------------------- colour modes

def test_gray_and_bilevel_become_rgb():
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    result = load_image(encode(Image.fromarray(gray), "PNG"))
    np.testing.assert_array_equal(result.rgb, np.repeat(gray[..., None], 3, axis=2))
    bilevel = Image.fromarray(gray > 100).convert("1")
    result = load_image(encode(bilevel, "PNG"))
    np.testing.assert_array_equal(result.rgb[..., 0], np.where(gray > 100, 255, 0))


def test_sixteen_bit_png_is_rescaled_not_clipped():
    values = np.zeros((8, 8), np.uint16)
    values[0, :5] = (0, 257, 32768, 40000, 65535)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    data = encode(image, "PNG")
    with Image.open(io.BytesIO(data)) as reopened:
        assert reopened.mode in ("I;16", "I")
    result = load_image(data)
    np.testing.assert_array_equal(result.rgb[0, :5, 0], (0, 1, 128, 156, 255))
    assert (result.rgb[0, :5, 0] == result.rgb[0, :5, 2]).all()


def test_big_endian_and_32_bit_integer_modes():
    values = np.full((8, 8), 65535, np.uint16)
    values[0, 0] = 32768
    big_endian = Image.frombytes("I;16B", (8, 8), values.astype(">u2").tobytes())
    result = load_image(big_endian)
    assert result.rgb[0, 0, 0] == 128 and result.rgb[1, 1, 0] == 255
    int32 = Image.fromarray(values.astype(np.int32))
    assert int32.mode == "I"
    np.testing.assert_array_equal(load_image(int32).rgb, result.rgb)


def test_float_mode_image_is_read_as_unit_range(tmp_path):
    values = np.full((8, 8), 0.5, np.float32)
    values[0, 0] = 1.0
    path = tmp_path / "float.tif"
    Image.fromarray(values).save(path)
    result = load_image(path)
    assert result.rgb[0, 0, 0] == 255 and result.rgb[1, 1, 0] == 128


def test_cmyk_jpeg_and_tiff():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in naive CMYK
    for fmt in ("TIFF", "JPEG"):
        result = load_image(encode(cmyk, fmt))
        red, green, blue = (int(v) for v in result.rgb[8, 8])
        assert red > 240 and green < 15 and blue < 15, fmt


def test_formats_round_trip(tmp_path):
    pixels = noise()
    for suffix in (".bmp", ".tif", ".webp"):
        path = tmp_path / f"image{suffix}"
        Image.fromarray(pixels).save(path, **({"lossless": True} if suffix == ".webp" else {}))
        np.testing.assert_array_equal(load_image(path).rgb, pixels, err_msg=suffix)
    jpeg = load_image(encode(Image.fromarray(np.full((16, 16, 3), (200, 40, 90), np.uint8)), "JPEG", quality=95))
    assert np.abs(jpeg.rgb.astype(int) - (200, 40, 90)).max() <= 3


# ---------------------------------------------------------------- orientation, animation

def oriented(fmt: str, orientation: int) -> tuple[bytes, np.ndarray]:
    pixels = np.zeros((16, 32, 3), np.uint8)
    pixels[:, :16] = RED
    pixels[:, 16:] = BLUE
    pixels[0, 0] = (0, 255, 0)  # marks the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.fromarray(pixels), fmt, exif=exif.tobytes()), pixels


def test_exif_orientation_is_applied():
    data, stored = oriented("PNG", 6)  # 6: rotate 90 degrees clockwise to display
    result = load_image(data)
    np.testing.assert_array_equal(result.rgb, np.rot90(stored, k=-1))
    data, stored = oriented("PNG", 3)  # 3: rotate 180 degrees
    np.testing.assert_array_equal(load_image(data).rgb, stored[::-1, ::-1])


def test_exif_orientation_in_jpeg():
    data, _ = oriented("JPEG", 8)  # 8: rotate 90 degrees counter-clockwise; stored left (red) ends at the bottom
    result = load_image(data)
    assert result.rgb.shape == (32, 16, 3)
    assert result.rgb[28, 8, 0] > 200 and result.rgb[4, 8, 2] > 200


@pytest.mark.parametrize("fmt,options", [("GIF", {}), ("PNG", {}), ("WEBP", {"lossless": True})])
def test_animated_images_give_the_first_frame(fmt, options):
    frames = [Image.new("RGB", (16, 16), colour) for colour in (RED, BLUE, (0, 255, 0))]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **options)
    with Image.open(io.BytesIO(data)) as image:
        assert image.is_animated
    result = load_image(data)
    assert result.rgb.shape == (16, 16, 3)
    assert (result.rgb == RED).all()


# ---------------------------------------------------------------- arrays

def test_array_shapes_and_dtypes():
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    np.testing.assert_array_equal(load_image(gray).rgb[..., 1], gray)
    np.testing.assert_array_equal(load_image(gray[..., None]).rgb[..., 2], gray)
    gray_alpha = load_image(np.dstack([gray, np.zeros_like(gray)]))
    assert (gray_alpha.rgb == 128).all() and (gray_alpha.alpha == 0).all()
    assert (load_image(np.ones((8, 8), bool)).rgb == 255).all()
    assert (load_image(np.full((8, 8, 3), 32768, np.uint16)).rgb == 128).all()
    floats = np.full((8, 8, 3), 0.5, np.float64)
    floats[0, 0] = (0.0, 1.0, 1.0004)  # tiny overshoot from float maths is tolerated
    result = load_image(floats)
    assert tuple(result.rgb[0, 0]) == (0, 255, 255) and (result.rgb[1:] == 128).all()


def test_results_are_writable_copies(tmp_path):
    pixels = noise(channels=4)
    pixels[..., 3] = 255
    for source in (pixels[..., :3], pixels, encode(Image.fromarray(pixels), "PNG")):
        result = load_image(source)
        assert result.rgb.flags.writeable and not np.shares_memory(result.rgb, pixels)
        result.rgb[:] = 0
        if result.alpha is not None:
            assert result.alpha.flags.writeable and not np.shares_memory(result.alpha, pixels)
            result.alpha[:] = 0
    assert (pixels[..., 3] == 255).all() and pixels[..., :3].any()


def test_non_contiguous_array_view():
    pixels = noise()
    bgr_view = pixels[:, :, ::-1]
    result = load_image(bgr_view)
    np.testing.assert_array_equal(result.rgb, bgr_view)
    assert result.rgb.flags.c_contiguous


@pytest.mark.parametrize("array,needle", [
    (np.zeros((8, 8, 5), np.uint8), "shape (8, 8, 5)"),
    (np.zeros((1, 8, 8, 3), np.uint8), "shape (1, 8, 8, 3)"),
    (np.zeros(64, np.uint8), "shape (64,)"),
    (np.zeros((8, 8, 3), np.int64), "dtype int64"),
    (np.zeros((8, 8, 3), np.complex64), "dtype complex64"),
    (np.full((8, 8, 3), 255.0, np.float32), "[0, 1]"),
    (np.full((8, 8, 3), np.nan, np.float32), "[0, 1]"),
])
def test_unsupported_arrays_are_refused(array, needle):
    with pytest.raises(BadImageError) as error:
        load_image(array)
    assert_one_sentence(error, "the given array", needle)


def test_unsupported_source_type():
    with pytest.raises(BadImageError) as error:
        load_image([[0, 0], [0, 0]])
    assert_one_sentence(error, "list")


# ---------------------------------------------------------------- bad files

def test_missing_file(tmp_path):
    with pytest.raises(BadImageError) as error:
        load_image(tmp_path / "nope.png")
    assert_one_sentence(error, "nope.png", "no such file")


def test_directory(tmp_path):
    with pytest.raises(BadImageError) as error:
        load_image(tmp_path)
    assert_one_sentence(error, str(tmp_path), "folder")


def test_empty_file_and_empty_bytes(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(BadImageError) as error:
        load_image(path)
    assert_one_sentence(error, "empty.png", "0 bytes")
    with pytest.raises(BadImageError) as error:
        load_image(b"")
    assert_one_sentence(error, "the image data", "empty")


@pytest.mark.parametrize("content", [b"hello, this is a text file\n" * 20, bytes(range(256)) * 4])
def test_non_image_files(tmp_path, content):
    path = tmp_path / "notes.png"
    path.write_bytes(content)
    with pytest.raises(BadImageError) as error:
        load_image(path)
    assert_one_sentence(error, "notes.png", "convert it to PNG or JPEG")


def test_svg_is_explained(tmp_path):
    svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect/></svg>'
    path = tmp_path / "logo.svg"
    path.write_bytes(svg)
    with pytest.raises(BadImageError) as error:
        load_image(path)
    assert_one_sentence(error, "logo.svg", "SVG", "rasterize it to PNG")
    with pytest.raises(BadImageError) as error:
        load_image(svg)
    assert_one_sentence(error, "SVG")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_rejected_not_half_gray(tmp_path, fmt):
    data = encode(Image.fromarray(noise(64, 64)), fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    for fraction in (0.3, 0.6, 0.9):
        path.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(BadImageError) as error:
            load_image(path)
        assert_one_sentence(error, "cut.", "truncated")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF"])
def test_any_damage_gives_bad_image_error_or_an_image(fmt):
    """Every cut point and a sprinkle of flipped bytes: no warning and no exception other than BadImageError."""
    data = encode(Image.fromarray(noise(24, 24)), fmt)
    rng = np.random.default_rng(1)
    damaged = [data[:cut] for cut in range(0, len(data), max(1, len(data) // 60))]
    for _ in range(30):
        flipped = bytearray(data)
        for position in rng.integers(0, len(data), 4):
            flipped[position] ^= 0xFF
        damaged.append(bytes(flipped))
    for sample in damaged:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                result = load_image(sample)
        except BadImageError as error:
            assert "\n" not in str(error)
        else:
            assert result.rgb.dtype == np.uint8 and result.rgb.ndim == 3


def test_tiny_images_are_refused_with_their_size():
    with pytest.raises(BadImageError) as error:
        load_image(encode(Image.new("RGB", (1, 1)), "PNG"))
    assert_one_sentence(error, "1x1 pixels", f"at least {MIN_SIDE}x{MIN_SIDE}")
    with pytest.raises(BadImageError) as error:
        load_image(np.zeros((MIN_SIDE, MIN_SIDE - 1, 3), np.uint8))
    assert_one_sentence(error, f"{MIN_SIDE - 1}x{MIN_SIDE} pixels")
    assert load_image(np.zeros((MIN_SIDE, MIN_SIDE, 3), np.uint8)).rgb.shape == (MIN_SIDE, MIN_SIDE, 3)


def test_oversized_header_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(12_000, 10_000))  # 120 MP claimed, ~100 bytes of file
    with pytest.raises(BadImageError) as error:
        load_image(path)
    assert_one_sentence(error, "bomb.png", "12000x10000", "100 MP limit", "downscale")


def test_pillow_decompression_bomb_error_is_translated_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(BadImageError) as error:
            load_image(png_header_only(60_000, 60_000))  # beyond Pillow's own hard limit
        with pytest.raises(BadImageError):
            load_image(png_header_only(10_000, 9_500))  # under our limit, over Pillow's warning level: no pixel data
    assert_one_sentence(error, "decompression bomb")


def test_max_pixels_is_configurable():
    image = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(BadImageError) as error:
        load_image(encode(Image.fromarray(image), "PNG"), max_pixels=399)
    assert_one_sentence(error, "20x20", "limit")
    assert load_image(image, max_pixels=400).rgb.shape == (20, 20, 3)


# ---------------------------------------------------------------- write_png_atomic

@pytest.mark.parametrize("shape", [(12, 10), (12, 10, 3), (12, 10, 4)])
def test_write_png_atomic_round_trips(tmp_path, shape):
    array = np.random.default_rng(2).integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / "deep" / "er" / "out.png"
    write_png_atomic(path, array)
    with Image.open(path) as image:
        assert image.format == "PNG"
        np.testing.assert_array_equal(np.asarray(image), array)
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.png"]


def test_write_png_atomic_overwrites_and_respects_umask(tmp_path):
    path = tmp_path / "mask.png"
    write_png_atomic(path, np.zeros((8, 8), np.uint8))
    write_png_atomic(str(path), np.full((8, 8), 255, np.uint8))
    with Image.open(path) as image:
        assert (np.asarray(image) == 255).all()
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_write_png_atomic_failure_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "keep.png"
    write_png_atomic(path, np.zeros((8, 8), np.uint8))
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(imageio.os, "replace", broken_replace)
    with pytest.raises(ToonmatteError) as error:
        write_png_atomic(path, np.full((8, 8), 255, np.uint8))
    assert_one_sentence(error, "keep.png", "the disk is full")
    assert str(tmp_path) not in str(error.value)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]


def test_write_png_atomic_rejects_wrong_arrays(tmp_path):
    for array in (np.zeros((8, 8), np.float32), np.zeros((8, 8, 2), np.uint8), np.zeros((2, 8, 8, 3), np.uint8)):
        with pytest.raises(ValueError):
            write_png_atomic(tmp_path / "x.png", array)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- collect_inputs

@pytest.fixture
def folder(tmp_path) -> Path:
    for name in ("b.png", "a.JPG", "c.webp", "notes.txt", ".hidden.png", "sub/d.png", "sub/e.tiff", ".git/f.png"):
        path = tmp_path / "shots" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return tmp_path / "shots"


def names(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_collect_folder_is_sorted_images_only(folder):
    assert names(collect_inputs([str(folder)])) == ["a.JPG", "b.png", "c.webp"]
    assert names(collect_inputs([str(folder)], recursive=True)) == ["a.JPG", "b.png", "c.webp", "d.png", "e.tiff"]


def test_collect_globs_files_and_missing_in_order_without_duplicates(folder):
    inputs = [str(folder / "c.webp"), str(folder / "*.png"), str(folder / "notes.txt"), str(folder),
              str(folder / "missing.png"), str(folder / "*.gif"), str(folder / "**" / "*.tiff")]
    result = collect_inputs(inputs)
    assert names(result) == ["c.webp", "b.png", "notes.txt", "a.JPG", "missing.png", "*.gif", "e.tiff"]
    assert result[0] == folder / "c.webp"


def test_collect_dedups_different_spellings_of_one_file(folder, monkeypatch):
    monkeypatch.chdir(folder)
    assert names(collect_inputs(["b.png", "./b.png", str(folder / "b.png")])) == ["b.png"]


def test_collected_paths_load(tmp_path):
    rgb, alpha = draw_toon(32, 32)
    write_png_atomic(tmp_path / "toon.png", np.dstack([rgb, alpha]))
    (tmp_path / "toon.txt").write_text("not an image")
    [path] = collect_inputs([str(tmp_path)])
    np.testing.assert_array_equal(load_image(path).alpha, alpha)


# ------------------------------------------------------------------ masks

def gray_png_header_only(width: int, height: int) -> bytes:
    """A gray PNG whose IHDR claims width x height, with one tiny IDAT: decoding it would fail as truncated."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 16)) + png_chunk(b"IEND", b""))


def test_load_mask_reads_gray_sixteen_bit_one_bit_and_gray_rgb(tmp_path):
    alpha = draw_toon(32, 24)[1]
    Image.fromarray(alpha).save(tmp_path / "l.png")
    Image.fromarray(np.dstack([alpha] * 3)).save(tmp_path / "rgb.png")
    Image.fromarray(alpha.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")
    Image.fromarray(alpha > 127).save(tmp_path / "bits.png")
    Image.fromarray(np.dstack([alpha, np.full_like(alpha, 255)]), "LA").save(tmp_path / "opaque_la.png")
    for name in ("l", "rgb", "sixteen", "opaque_la"):
        assert np.array_equal(load_mask(tmp_path / f"{name}.png", (32, 24)), alpha), name
    assert np.array_equal(load_mask(tmp_path / "bits.png"), np.where(alpha > 127, 255, 0))


def test_load_mask_takes_the_matte_from_a_meaningful_alpha_channel(tmp_path):
    """White RGB with the subject in alpha (a common mask export) and a cut-out both give their alpha."""
    rgb, alpha = draw_toon(40, 32, seed=1)
    Image.fromarray(np.dstack([np.full_like(rgb, 255), alpha])).save(tmp_path / "white.png")
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "cutout.png")
    binary = np.where(alpha > 127, 255, 0).astype(np.uint8)
    Image.fromarray(np.dstack([binary, binary, binary, alpha])).save(tmp_path / "black_bg.png")
    for name in ("white", "cutout", "black_bg"):
        mask = load_mask(tmp_path / f"{name}.png", (40, 32))
        assert np.array_equal(mask, alpha), name
        assert mask.min() == 0 and mask.max() == 255  # never the uniform white of the colour channels


def test_load_mask_refuses_colour_and_conflicting_mattes_with_how_to_export(tmp_path):
    alpha = draw_toon(32, 24)[1]
    Image.fromarray(np.dstack([alpha, alpha // 2, alpha])).save(tmp_path / "colour.png")
    with pytest.raises(BadImageError) as error:
        load_mask(tmp_path / "colour.png", (32, 24), label="colour.png")
    assert_one_sentence(error, "colour.png", "colour image", "8-bit grayscale PNG")
    transparency = np.zeros_like(alpha)
    transparency[:, :12] = 255  # a gray matte, half of it made transparent: which one is the subject?
    Image.fromarray(np.dstack([alpha, transparency]), "LA").save(tmp_path / "both.png")
    with pytest.raises(BadImageError) as error:
        load_mask(tmp_path / "both.png", (32, 24))
    assert_one_sentence(error, "different one in its transparency", "without transparency")


def test_load_mask_checks_the_size_from_the_header_before_decoding(tmp_path):
    """A tiny file declaring 13000x13000 is refused from its header (decoding it would say "truncated")."""
    path = tmp_path / "huge_mask.png"
    path.write_bytes(gray_png_header_only(13_000, 13_000))
    with pytest.raises(BadImageError) as error:
        load_mask(path, (480, 640), label="huge_mask.png")
    assert_one_sentence(error, "huge_mask.png", "13000x13000", "100 MP limit", "downscale")  # the images' sentence
    with pytest.raises(BadImageError) as error:
        load_image(path, label="huge_mask.png")
    assert_one_sentence(error, "huge_mask.png", "13000x13000", "100 MP limit", "downscale")
    path.write_bytes(gray_png_header_only(900, 700))
    with pytest.raises(BadImageError) as error:
        load_mask(path, (480, 640), label="huge_mask.png")
    assert_one_sentence(error, "900x700", "640x480", "same size")
    path.write_bytes(gray_png_header_only(60_000, 60_000))  # beyond Pillow's own hard limit
    with pytest.raises(BadImageError) as error:
        load_mask(path, (480, 640))
    assert_one_sentence(error, "decompression bomb")


def test_load_mask_names_the_file_by_its_label_only(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(BadImageError) as error:
        load_mask(tmp_path / "junk.png", (32, 24), label="junk.png")
    assert str(tmp_path) not in str(error.value) and "junk.png" in str(error.value)
