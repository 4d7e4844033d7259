"""Read ToonOut's dataset layout: ``<root>/<split>/<generation>/{im,gt,an}/<stem>.png``.

``im`` is the RGB image, ``gt`` the 8-bit alpha, ``an`` the RGBA cut-out; the three files of
one item (its *triple*) share a stem. Items may also sit outside any split, at
``<root>/<generation>/{im,gt,an}/<stem>.png``, until ``python -m toonmatte split`` moves
them. Hidden files and folders (names starting with ".", such as the studio's index and
history) are ignored, and so is anything that is not a ``.png``.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from toonmatte.errors import BadImageError, ToonmatteError

SPLITS: tuple[str, ...] = ("train", "val", "test")
KINDS: tuple[str, ...] = ("im", "gt", "an")
SUFFIX = ".png"


@dataclass(frozen=True)
class Item:
    """One dataset item; ``split`` is None for an item not yet split. Missing files are None."""

    split: str | None
    generation: str
    stem: str
    im: Path | None = None
    gt: Path | None = None
    an: Path | None = None

    @property
    def folder(self) -> str:
        """The item's folder relative to the root, e.g. ``train/2024-05-01_alice``."""
        return self.generation if self.split is None else f"{self.split}/{self.generation}"

    @property
    def name(self) -> str:
        """``<folder>/<stem>``: unique within a root."""
        return f"{self.folder}/{self.stem}"

    def path(self, kind: str) -> Path | None:
        return getattr(self, kind)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(kind for kind in KINDS if self.path(kind) is None)

    @property
    def complete(self) -> bool:
        return not self.missing


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan_generation(split: str | None, generation: Path) -> list[Item]:
    found: dict[str, dict[str, Path]] = {}
    for kind in KINDS:
        folder = generation / kind
        if not folder.is_dir():
            continue
        for file in folder.iterdir():
            if file.is_file() and not file.name.startswith(".") and file.suffix.lower() == SUFFIX:
                found.setdefault(file.stem, {})[kind] = file
    return [Item(split, generation.name, stem, **paths) for stem, paths in sorted(found.items())]


def list_items(root: str | Path, splits: Iterable[str] | None = None) -> list[Item]:
    """Every item under ``root``, complete or not, sorted by (split, generation, stem).

    ``splits`` restricts the listing to those split folders; None lists all splits and
    the items not split yet.
    """
    root = Path(root)
    if not root.is_dir():
        raise ToonmatteError(f"The dataset folder {root} does not exist; pass the folder that holds train/val/test.")
    wanted = None if splits is None else set(splits)
    if wanted is not None and not wanted <= set(SPLITS):
        raise ToonmatteError(f"Unknown split {sorted(wanted - set(SPLITS))[0]!r}; use one of {', '.join(SPLITS)}.")
    items: list[Item] = []
    for top in _visible_dirs(root):
        if top.name in SPLITS:
            if wanted is None or top.name in wanted:
                for generation in _visible_dirs(top):
                    items.extend(_scan_generation(top.name, generation))
        elif wanted is None:
            items.extend(_scan_generation(None, top))
    return sorted(items, key=lambda item: (item.split or "", item.generation, item.stem))


def incomplete_items(items: Iterable[Item]) -> list[Item]:
    """The items whose im/gt/an triple lacks at least one file."""
    return [item for item in items if not item.complete]


def describe_missing(items: Iterable[Item], limit: int = 20) -> str:
    """``train/gen/a (missing gt, an), ...`` for messages, listing at most ``limit`` items."""
    items = list(items)
    parts = [f"{item.name} (missing {', '.join(item.missing)})" for item in items[:limit]]
    if len(items) > limit:
        parts.append(f"and {len(items) - limit} more")
    return ", ".join(parts)


def read_alpha(path: str | Path) -> np.ndarray:
    """An alpha matte file as uint8 HxW: a gray image as is, the alpha band of an image that has one.

    16-bit gray images are scaled to 8 bits; colour images without alpha are converted to gray.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode.startswith("I"):
                values = np.asarray(image, dtype=np.float64)
                if image.mode.startswith("I;16") or values.max() > 255:
                    values = values / 257.0
                return values.round().clip(0, 255).astype(np.uint8)
            if image.mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "L")
            if "A" in image.getbands():
                return np.asarray(image.getchannel("A"), dtype=np.uint8)
            return np.asarray(image.convert("L"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise BadImageError(f"Cannot read the matte {path} ({error}); check that it is an intact PNG.") from error
