"""Reading any image into uint8 RGB (+ alpha), writing PNGs atomically, and expanding input lists.

Every failure a user can cause (missing file, truncated data, SVG, a decompression bomb, a
1x1 image...) becomes a :class:`BadImageError` whose message is one sentence that names the
input and says what to do.
"""
from __future__ import annotations

import logging
import os
import secrets
import struct
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from glob import glob
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from toonmatte.errors import BadImageError, write_error
from toonmatte.imaging.png import encode_png

log = logging.getLogger(__name__)

GRAY = (128, 128, 128)
"""Default background for transparent pixels: ToonOut was trained on characters over #808080."""
MAX_PIXELS = 100_000_000
"""Largest image (width * height) accepted; checked from the header before any pixel is decoded."""
MIN_SIDE = 8
"""Smallest width and height accepted: below this there is no character to cut out."""
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray

# What Pillow raises for corrupt or truncated data (UnidentifiedImageError is an OSError).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_FLOAT_TOLERANCE = 1e-3
_ORIENTATION_TAG = 0x0112


@dataclass
class LoadedImage:
    """An input image ready for matting.

    ``rgb`` is uint8 HxWx3 with any transparency composited onto the background colour;
    ``alpha`` is the input's own uint8 HxW alpha, or None when it had none; ``name`` is the
    file stem, or "" for bytes and arrays.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    name: str


def load_image(
    source: ImageSource,
    background: tuple[int, int, int] = GRAY,
    max_pixels: int = MAX_PIXELS,
    label: str | None = None,
) -> LoadedImage:
    """Load a path, encoded bytes, PIL image or numpy array as uint8 RGB plus optional alpha.

    EXIF orientation is applied, animated images give their first frame, 16-bit data is
    rescaled (not clipped) to 8 bits, floats are read as [0, 1], and transparent pixels are
    alpha-composited onto ``background``. Raises BadImageError with a one-sentence message that
    names a path by ``label`` when given (a server uses the uploaded file's name, not its temp path).
    """
    if isinstance(source, np.ndarray):
        channels = _array_channels(source, "the given array", max_pixels)
        name = ""
    elif isinstance(source, Image.Image):
        filename = getattr(source, "filename", "") or ""
        label = str(filename) if filename else "the given image"
        channels = _decoded_channels(source, label, max_pixels)
        name = Path(filename).stem if filename else ""
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        with _open_bytes(data) as image:
            channels = _decoded_channels(image, "the image data", max_pixels)
        name = ""
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        with _open_path(path, label or str(path)) as image:
            channels = _decoded_channels(image, label or str(path), max_pixels)
        name = path.stem
    else:
        raise BadImageError(
            f"Cannot read an image from a {type(source).__name__}; pass a file path, bytes, "
            "a PIL image or a numpy array."
        )
    rgb, alpha = _composite(channels, background)
    return LoadedImage(rgb=rgb, alpha=alpha, name=name)


@contextmanager
def _open_path(path: Path, label: str) -> Iterator[Image.Image]:
    if path.is_dir():
        raise BadImageError(f"Cannot read {label}: it is a folder, not an image file; pass the image files inside it.")
    if not path.exists():
        raise BadImageError(f"Cannot read {label}: no such file; check the path.")
    try:
        if path.stat().st_size == 0:
            raise BadImageError(f"Cannot read {label}: the file is empty (0 bytes); re-export or re-download it.")
        with open(path, "rb") as file:
            head = file.read(1024)
    except OSError as error:
        raise BadImageError(f"Cannot read {label}: {error.strerror or error}; "
                            "check that the file is readable.") from None
    with _open_with_pillow(lambda: Image.open(path), label, head, path.suffix) as image:
        yield image


@contextmanager
def _open_bytes(data: bytes) -> Iterator[Image.Image]:
    label = "the image data"
    if not data:
        raise BadImageError("Cannot read the image data: it is empty (0 bytes); pass the bytes of an image file.")
    with _open_with_pillow(lambda: Image.open(BytesIO(data)), label, data[:1024], "") as image:
        yield image


@contextmanager
def _open_with_pillow(opener: Callable[[], Image.Image], label: str, head: bytes, suffix: str) -> Iterator[Image.Image]:
    """Open lazily (header only) and turn Pillow's errors into BadImageError."""
    try:
        with _quiet_pillow():
            image = opener()
    except Image.DecompressionBombError:
        raise BadImageError(
            f"Cannot use {label}: its header claims far more pixels than allowed (a possible decompression "
            "bomb); downscale it first."
        ) from None
    except UnidentifiedImageError:
        if suffix.lower() in (".svg", ".svgz") or b"<svg" in head.lower():
            raise BadImageError(
                f"Cannot read {label}: SVG is a vector format; rasterize it to PNG first (for example "
                "with Inkscape or a browser)."
            ) from None
        raise BadImageError(
            f"Cannot read {label}: it is not an image format that can be decoded; convert it to PNG or JPEG."
        ) from None
    except _DECODE_ERRORS:
        raise BadImageError(f"Cannot read {label}: the image header is corrupt; "
                            "re-export or re-download the file.") from None
    with image:
        yield image


def load_mask(path: str | os.PathLike, size: tuple[int, int] | None = None, label: str | None = None,
              max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An alpha matte file as uint8 HxW (255 = subject, 0 = background).

    Its size is checked from the header before any pixel is decoded: the same limits and sentences
    as for images, then against ``size`` (height, width) when given. Gray files (8-bit, 16-bit
    rescaled, 1-bit, gray-valued RGB) are the matte. A file whose alpha channel is not all opaque is
    read from that channel, as a cut-out's is and as a mask exported with white colour and the subject
    in its transparency is. Refused with a sentence on how to export the mask: a colour image without
    transparency, and a gray matte whose transparency carries a different one. Messages name the file
    by ``label`` when given.
    """
    path = Path(path)
    label = label or str(path)
    with _open_path(path, label) as image:
        width, height = image.size
        _check_size(width, height, label, max_pixels)
        if size is not None and (height, width) != tuple(size):
            raise BadImageError(f"The mask {label} is {width}x{height} but the image is {size[1]}x{size[0]}; "
                                "send a mask of the same size.")
        channels = _decoded_channels(image, label, max_pixels)
    count = channels.shape[2]
    colour = channels[..., :3] if count >= 3 else channels[..., :1]
    gray = colour[..., 0]
    gray_valued = all(np.array_equal(gray, colour[..., c]) for c in range(1, colour.shape[2]))
    alpha = channels[..., -1] if count in (2, 4) else None
    export = "export the matte as an 8-bit grayscale PNG without transparency (255 = subject, 0 = background)"
    if alpha is not None and (alpha != 255).any():
        opaque = gray[alpha == 255]
        if gray_valued and opaque.size and opaque.min() != opaque.max() and not np.array_equal(gray, alpha):
            raise BadImageError(f"The mask {label} has a gray matte and a different one in its transparency; {export}.")
        return np.array(alpha, order="C")
    if not gray_valued:
        raise BadImageError(f"The mask {label} is a colour image; {export}, or send the cut-out with transparency.")
    return np.array(gray, order="C")


@contextmanager
def _quiet_pillow() -> Iterator[None]:
    """Silence Pillow's warnings while decoding: damage becomes a BadImageError, and our own
    max_pixels check replaces its DecompressionBombWarning (its hard limit still raises)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _check_size(width: int, height: int, label: str, max_pixels: int) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise BadImageError(
            f"Cannot use {label}: it is only {width}x{height} pixels; use an image of at least {MIN_SIDE}x{MIN_SIDE}."
        )
    if width * height > max_pixels:
        raise BadImageError(
            f"Cannot use {label}: it is {width}x{height} pixels ({width * height / 1e6:.1f} MP), above the "
            f"{max_pixels / 1e6:g} MP limit; downscale it first."
        )


def _decoded_channels(image: Image.Image, label: str, max_pixels: int) -> np.ndarray:
    """Size check from the header, then decode, orient and convert to uint8 HxWxC (C = 3 or 4, or 1/2 for 16-bit)."""
    width, height = image.size
    _check_size(width, height, label, max_pixels)
    try:
        with _quiet_pillow():
            if getattr(image, "is_animated", False):
                log.debug("%s is animated; using its first frame", label)
            image.load()
    except Image.DecompressionBombError:
        raise BadImageError(
            f"Cannot use {label}: it decodes to far more pixels than allowed (a possible decompression "
            "bomb); downscale it first."
        ) from None
    except _DECODE_ERRORS:
        raise BadImageError(
            f"Cannot read {label}: the image data is truncated or corrupt; re-export or re-download the file."
        ) from None
    try:
        with _quiet_pillow():
            if image.getexif().get(_ORIENTATION_TAG, 1) != 1:
                image = ImageOps.exif_transpose(image)
    except _DECODE_ERRORS as error:
        log.debug("ignoring unreadable EXIF orientation of %s: %s", label, error)
    return _pil_channels(image, label)


def _pil_channels(image: Image.Image, label: str) -> np.ndarray:
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image)
        gray = _sixteen_to_eight(np.clip(values, 0, 65535))
        transparent = image.info.get("transparency")
        if isinstance(transparent, int):
            alpha = np.where(values == transparent, 0, 255).astype(np.uint8)
            return np.stack([gray, alpha], axis=-1)
        return gray[..., None]
    if image.mode == "F":
        return _float_to_eight(np.asarray(image), label)[..., None]
    if image.mode == "La":  # premultiplied: Pillow converts it only to LA
        image = image.convert("LA")
    target = "RGBA" if image.has_transparency_data else "RGB"
    try:
        return np.asarray(image.convert(target))
    except ValueError:
        raise BadImageError(
            f"Cannot read {label}: its colour mode {image.mode} is not supported; convert it to RGB or RGBA first."
        ) from None


def _array_channels(array: np.ndarray, label: str, max_pixels: int) -> np.ndarray:
    """Validate an HxW / HxWxC array and return it as uint8 HxWxC."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise BadImageError(
            f"Cannot use {label}: shape {array.shape} is not HxW (gray), HxWx3 (RGB) or HxWx4 (RGBA); reshape it first."
        )
    height, width = array.shape[:2]
    _check_size(width, height, label, max_pixels)
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return _sixteen_to_eight(array)
    if np.issubdtype(array.dtype, np.floating):
        return _float_to_eight(array, label)
    raise BadImageError(
        f"Cannot use {label}: dtype {array.dtype} is not supported; pass uint8, uint16, or float values in [0, 1]."
    )


def _sixteen_to_eight(values: np.ndarray) -> np.ndarray:
    """Map 0..65535 onto 0..255 with round-to-nearest (65535 -> 255, 32768 -> 128)."""
    wide = values.astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _float_to_eight(values: np.ndarray, label: str) -> np.ndarray:
    finite = np.isfinite(values).all()
    if not finite or values.min() < -_FLOAT_TOLERANCE or values.max() > 1 + _FLOAT_TOLERANCE:
        raise BadImageError(
            f"Cannot use {label}: float pixel values must lie in [0, 1]; scale them (for example divide by 255) first."
        )
    return np.floor(np.clip(values, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _composite(channels: np.ndarray, background: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """Split uint8 HxWxC into (RGB composited onto background, alpha or None), as fresh writable arrays."""
    count = channels.shape[2]
    colour = channels[..., :3] if count >= 3 else np.repeat(channels[..., :1], 3, axis=2)
    if count in (1, 3):
        return np.array(colour, order="C"), None  # a copy: never alias the caller's array or Pillow's buffer
    alpha = np.array(channels[..., -1], order="C")
    weight = alpha[..., None].astype(np.uint16)
    backdrop = np.asarray(background, dtype=np.uint16).reshape(3)
    # colour*a + bg*(255-a) <= 255*255, so uint16 holds it; +127 then //255 rounds to nearest.
    blended = colour.astype(np.uint16) * weight + backdrop * (255 - weight) + 127
    return (blended // 255).astype(np.uint8), alpha


def write_png_atomic(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 HxW (gray), HxWx3 (RGB) or HxWx4 (RGBA) array as a PNG (``toonmatte.imaging.png.encode_png``),
    atomically.

    The PNG goes to a uniquely named temp file in the same folder, is fsynced, then renamed
    over ``path``, so readers never see a half-written file. Parent folders are created.
    Raises ValueError for a wrong array and a WriteError naming only the file when the disk write fails.
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ValueError(f"write_png_atomic needs uint8 HxW, HxWx3 or HxWx4, got {array.dtype} {array.shape}")
    target = Path(path)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(descriptor, "wb") as file:
            file.write(encode_png(array))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except OSError as error:
        try:
            temp.unlink(missing_ok=True)
        except OSError:
            pass
        raise write_error(error, target.name) from None
    fsync_directory(target.parent)


def prepare_folder(folder: Path, what: str) -> None:
    """Create ``folder`` (and its parents) and check that it takes a new file; when it cannot, one
    sentence that starts with ``what`` and names the folder (a file in the way, permission, read-only,
    a full disk)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{secrets.token_hex(6)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise write_error(error, f"{what} {folder}") from None


def fsync_directory(folder: Path) -> None:
    """Make the rename durable; not possible on every OS (Windows), where it is skipped."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def collect_inputs(inputs: list[str], recursive: bool = False) -> list[Path]:
    """Expand files, folders and glob patterns into a deduplicated list of paths, in order.

    A folder gives its image files (by IMAGE_EXTENSIONS, hidden files skipped) sorted by name,
    including subfolders only when ``recursive``; a glob gives its matching image files, sorted.
    A file named explicitly is kept whatever its extension, and an input that matches nothing
    is returned as given so the caller can report it as not found and go on with the rest.
    """
    collected: list[Path] = []
    seen: set[Path] = set()
    for entry in inputs:
        for path in _expand(entry, recursive):
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                collected.append(path)
    return collected


def _expand(entry: str, recursive: bool) -> list[Path]:
    path = Path(entry).expanduser()
    if path.is_dir():
        candidates = path.rglob("*") if recursive else path.iterdir()
        found = sorted(p for p in candidates if _is_image_file(p) and not _is_hidden(p.relative_to(path)))
        if not found:
            log.warning("%s contains no image files (%s)", path, ", ".join(sorted(IMAGE_EXTENSIONS)))
        return found
    if path.exists() or not any(char in entry for char in "*?["):
        return [path]
    matches = sorted(Path(p) for p in glob(str(path), recursive=True))
    images = [p for p in matches if _is_image_file(p)]
    return images or [path]


def _is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def _is_hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)
