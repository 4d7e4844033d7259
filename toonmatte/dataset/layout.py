"""ToonOut's dataset layout: where each file of an item lives, and listing the items under a root.

``<root>/<split>/<generation>/{im,gt,an}/<stem>.png``: ``im`` is the RGB image, ``gt`` the 8-bit
alpha, ``an`` the RGBA cut-out; the three files of one item (its *triple*) share a stem. Items may
also sit outside any split, at ``<root>/<generation>/{im,gt,an}/<stem>.png``, until ``python -m
toonmatte split`` moves them. Hidden files and folders (names starting with ".") are not part of
the dataset: ``.toonmatte/`` holds the store's index, journals, locks and predicted alphas, and
``.history/<split>/<generation>/<stem>/<UTC timestamp>/{im,gt,an}.png`` keeps replaced versions.
Anything that is not a ``.png`` is ignored too.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from toonmatte.errors import ToonmatteError

SPLITS: tuple[str, ...] = ("train", "val", "test")
KINDS: tuple[str, ...] = ("im", "gt", "an")
SUFFIX = ".png"
META_DIR = ".toonmatte"
HISTORY_DIR = ".history"
MAX_STEM_LENGTH = 120

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def sanitize_stem(name: str) -> str:
    """A file name or path as a safe stem: the base name without its extension, made of
    ``[A-Za-z0-9_-]`` (anything else, dots included, becomes ``_``, so the result is a fixed point),
    not starting with ``-``, never empty, at most ``MAX_STEM_LENGTH`` characters. Names that lose
    information (non-ASCII characters, truncation) get 8 hex digits of a hash of the original base
    name appended, so that distinct names stay distinct. Being a bare name, it cannot leave a folder."""
    base = re.split(r"[/\\]", str(name))[-1]
    head, dot, _extension = base.rpartition(".")
    if dot and head.strip("."):
        base = head
    folded = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")  # é -> e
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", folded.lstrip(".")).lstrip("-")
    lossy = not base.isascii()
    if len(stem) > MAX_STEM_LENGTH:
        stem, lossy = stem[:MAX_STEM_LENGTH - 9], True
    if lossy:
        digest = hashlib.sha1(base.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        stem = f"{stem}-{digest}" if stem else digest
    if not stem:
        return "untitled"
    return f"_{stem}" if stem.upper() in _RESERVED else stem


def check_folder_name(value: str, what: str) -> str:
    """``value`` if it is a safe split or generation folder name, else a one-sentence error."""
    if not isinstance(value, str) or not _SAFE_NAME.match(value) or len(value) > MAX_STEM_LENGTH:
        raise ToonmatteError(f"The {what} name {value!r} is not allowed; use letters, digits, '.', '_' and '-' only, "
                             "starting with a letter or digit.")
    return value


def triple_paths(root: Path, split: str | None, generation: str, stem: str) -> dict[str, Path]:
    """The ``im``, ``gt`` and ``an`` paths of an item (whether or not they exist)."""
    folder = root / generation if split is None else root / split / generation
    return {kind: folder / kind / f"{stem}{SUFFIX}" for kind in KINDS}


def history_folder(root: Path, split: str | None, generation: str, stem: str) -> Path:
    """The folder holding an item's replaced versions, one timestamped subfolder each."""
    return root / HISTORY_DIR / (split or "") / generation / stem


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
        """The item's folder relative to the root, e.g. ``train/<date>_alice``."""
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
