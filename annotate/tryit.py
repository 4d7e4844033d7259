"""The read-only *Try it* mode: matte uploaded images or an image URL, preview the cut-outs and
download them (one by one, or all in a zip). Nothing is written to the dataset and no server
folder is read: the files live in the studio's short-lived output folder.

Fetching a URL is bounded: http(s) only, public addresses only (a Space must not become a way
into its own network), at most ``MAX_URL_BYTES``, a short timeout.
"""
from __future__ import annotations

import ipaddress
import socket
import uuid
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import httpx

from annotate.api import OutputFolder
from annotate.engine import Engine
from annotate.preview import cutout_rgba
from toonmatte.errors import BadImageError, ToonmatteError
from toonmatte.imaging.imageio import IMAGE_EXTENSIONS, load_image

MAX_IMAGES = 20
"""Images matted in one press of the button."""
MAX_URL_BYTES = 20 << 20
URL_TIMEOUT = 15.0


def _public_host(host: str) -> bool:
    """Whether every address ``host`` resolves to is a public one (not loopback, private, link-local...)."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    return bool(addresses) and all(address.is_global for address in addresses)


def fetch_url(url: str, folder: Path) -> Path:
    """Download the image at ``url`` into ``folder``; one sentence for anything that goes wrong."""
    url = url.strip()
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise BadImageError("That is not an http(s) link to an image; paste a link that starts with https://.")
    if not _public_host(parsed.hostname):
        raise BadImageError(f"{parsed.hostname} is not a public address this studio may fetch from; "
                            "download the image and upload it instead.")
    name = Path(parsed.path).name or "image"
    if Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
        name += ".png"
    target = folder / uuid.uuid4().hex / name
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with httpx.stream("GET", url, timeout=URL_TIMEOUT, follow_redirects=False) as response:
            if response.status_code != 200:
                raise BadImageError(f"The link answered {response.status_code}, not an image; check it in a browser.")
            size = 0
            with open(target, "wb") as sink:
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_URL_BYTES:
                        raise BadImageError(f"The image at that link is larger than {MAX_URL_BYTES >> 20} MB; "
                                            "download it, shrink it and upload it instead.")
                    sink.write(chunk)
    except httpx.HTTPError as error:
        raise BadImageError(f"The link could not be fetched ({type(error).__name__}); "
                            "check it, or upload the image.") from None
    return target


def matte_many(engine: Engine, paths: list[str], outputs: OutputFolder) -> tuple[list[tuple[str, str]], str, list[str]]:
    """Matte up to ``MAX_IMAGES`` image files: (gallery entries (cut-out, name), a zip of every
    cut-out and mask, one warning per file that could not be matted)."""
    if not paths:
        raise ToonmatteError("Choose one or more images (or paste an image link) first.")
    warnings = []
    if len(paths) > MAX_IMAGES:
        warnings.append(f"Only the first {MAX_IMAGES} images were matted; press again with the rest.")
        paths = paths[:MAX_IMAGES]
    matter = engine.get()
    loaded = []
    for path in paths:  # read here, so that a bad file is one warning and the rest go on
        try:
            loaded.append((Path(path), load_image(path, background=matter.background, label=Path(path).name)))
        except BadImageError as error:
            warnings.append(str(error))
    mattes = engine.predict_many([image for _, image in loaded]) if loaded else []  # one GPU call on ZeroGPU
    entries, files = [], []
    for (source, _), matte in zip(loaded, mattes):
        stem = source.stem or "image"
        cut, mask = outputs.write({f"{stem}.png": cutout_rgba(matte.image, matte.alpha, True),
                                   f"{stem}_mask.png": matte.alpha})
        entries.append((str(cut), cut.name))
        files += [cut, mask]
    if not entries:
        raise BadImageError(" ".join(warnings) or "None of the images could be matted.")
    bundle = outputs.root / uuid.uuid4().hex / "cutouts.zip"
    bundle.parent.mkdir(parents=True)
    used: set[str] = set()
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
        for file in files:
            name, counter = file.name, 1
            while name in used:  # two uploads with one name
                counter += 1
                name = f"{file.stem}-{counter}{file.suffix}"
            used.add(name)
            archive.write(file, name)
    return entries, str(bundle), warnings
