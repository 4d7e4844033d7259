"""``python -m toonmatte split ROOT``: shuffle a dataset's items into train/val/test as ToonOut did.

ToonOut's rule: sort the stems of the complete im/gt/an triples, shuffle them with seed 0,
and cut 80/10/10 into train/val/test. Here the shuffle is ``random.Random(seed).shuffle``
over the items sorted by (stem, generation); the cuts are at ``round(n * 0.8)`` and
``round(n * 0.9)``. Every split (and any item not split yet) is reshuffled together, so
adding items can move existing ones to another split.

Files are moved, never copied, within the root; each item keeps its generation folder and
its three files always move together. The moves are written to a hidden journal first, so
that an interrupted split is finished by the next run instead of leaving triples apart. The
studio's records of a moved item (index row, history, lock) follow it: see StudioRecords.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import sqlite3
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from toonmatte.dataset import KINDS, SPLITS, Item, describe_missing, incomplete_items, list_items
from toonmatte.errors import ToonmatteError

JOURNAL = ".split-journal.json"
STUDIO_DIR = ".toonmatte"
HISTORY_DIR = ".history"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, help="dataset folder laid out as <split>/<generation>/{im,gt,an}/<stem>.png")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and move nothing")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed (ToonOut: 0)")
    parser.add_argument("--ratios", type=parse_ratios, default=(0.8, 0.1, 0.1),
                        help="train,val,test fractions summing to 1 (default 0.8,0.1,0.1)")


def parse_ratios(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 0 or abs(sum(values) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(f"expected three non-negative fractions summing to 1, like 0.8,0.1,0.1, got {text!r}")
    return values  # type: ignore[return-value]


def plan_split(items: Sequence[Item], ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> dict[Item, str]:
    """The split each item belongs in: deterministic for a given set of items, ratios and seed."""
    order = sorted(items, key=lambda item: (item.stem, item.generation, item.split or ""))
    random.Random(seed).shuffle(order)
    n = len(order)
    first, second = round(n * ratios[0]), round(n * (ratios[0] + ratios[1]))
    return {item: SPLITS[0] if i < first else SPLITS[1] if i < second else SPLITS[2] for i, item in enumerate(order)}


def _check_unique(items: Sequence[Item]) -> None:
    """Two items with the same generation and stem would land on the same files."""
    places: dict[tuple[str, str], list[str]] = {}
    for item in items:
        places.setdefault((item.generation, item.stem), []).append(item.name)
    clashes = [" and ".join(names) for names in places.values() if len(names) > 1]
    if clashes:
        raise ToonmatteError(
            f"{len(clashes)} items share a generation and stem with another item, so nothing was moved: "
            f"{'; '.join(clashes[:20])}; rename or remove the duplicates and run split again.")


class StudioRecords:
    """The studio's own records under a root (``annotate/store.py``), kept in step with the moves.

    The studio indexes each stem's split in ``.toonmatte/index.sqlite``, serializes writes to a
    stem with ``flock`` on ``.toonmatte/locks/<stem>.lock`` and keeps old versions under
    ``.history/<split>/<generation>/<stem>/<timestamp>/``. A split takes the stem's lock while
    moving it, moves its history along and updates its index row, so the studio keeps saving
    each item where it now lives. Roots the studio never touched have none of these.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._index = root / STUDIO_DIR / "index.sqlite"
        self._locks = root / STUDIO_DIR / "locks"
        self._journals = root / STUDIO_DIR / "journal"
        self._db: sqlite3.Connection | None = None

    def unfinished_saves(self) -> list[str]:
        if not self._journals.is_dir():
            return []
        return sorted(path.name for path in self._journals.glob("*.json"))

    def history_moves(self, item: Item, split: str) -> list[tuple[str, str]]:
        """(source, destination) of each saved old version of ``item``, relative to the root."""
        old = self.root / HISTORY_DIR / (item.split or "") / item.generation / item.stem
        if item.split is None or not old.is_dir():
            return []
        new = self.root / HISTORY_DIR / split / item.generation / item.stem
        return [((old / version).relative_to(self.root).as_posix(), (new / version).relative_to(self.root).as_posix())
                for version in sorted(p.name for p in old.iterdir() if p.is_dir())]

    @contextmanager
    def locked(self, stem: str) -> Iterator[None]:
        if not self._locks.is_dir():
            yield
            return
        descriptor = os.open(self._locks / f"{stem}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def record(self, stem: str, generation: str, split: str) -> None:
        if not self._index.is_file():
            return
        if self._db is None:
            self._db = sqlite3.connect(self._index, timeout=30.0, isolation_level=None)
        try:
            self._db.execute("UPDATE items SET split = ? WHERE stem = ? AND generation = ?", (split, stem, generation))
        except sqlite3.Error as error:
            raise ToonmatteError(f"The studio index {self._index} could not be updated for {stem} ({error}); "
                                 f"close the studio and run split again to finish.") from error

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _entries(root: Path, plan: dict[Item, str], studio: StudioRecords) -> list[dict]:
    """One journal entry per item that changes split: its stem, generation, new split and moves."""
    entries = []
    for item, split in sorted(plan.items(), key=lambda pair: pair[0].name):
        if item.split == split:
            continue
        moves = []
        for kind in KINDS:
            source = item.path(kind)
            assert source is not None  # incomplete items are refused before planning
            destination = root / split / item.generation / kind / source.name
            moves.append((source.relative_to(root).as_posix(), destination.relative_to(root).as_posix()))
        moves += studio.history_moves(item, split)
        entries.append({"from": item.name, "stem": item.stem, "generation": item.generation, "split": split,
                        "moves": moves})
    return entries


def _write_journal(root: Path, entries: list[dict]) -> None:
    temporary = root / (JOURNAL + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(entries, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, root / JOURNAL)


def _read_journal(root: Path) -> list[dict] | None:
    """The entries of an interrupted split, or None when there is none."""
    journal = root / JOURNAL
    if not journal.exists():
        return None
    return json.loads(journal.read_text(encoding="utf-8"))


def _move(root: Path, source_name: str, destination_name: str) -> Path | None:
    """Rename one file or folder; None when it was already moved (source gone, destination there)."""
    source, destination = root / source_name, root / destination_name
    if not source.exists():
        if destination.exists():
            return None
        raise ToonmatteError(f"{source_name} vanished during the split; restore it and run split again.")
    if destination.exists():
        raise ToonmatteError(f"{destination_name} already exists, so {source_name} was not moved; "
                             f"remove one of them and run split again.")
    destination.parent.mkdir(parents=True, exist_ok=True)
    os.rename(source, destination)
    return source


def _apply(root: Path, entries: list[dict]) -> None:
    """Perform a journal's entries, item by item under the studio's lock; replaying a done entry is harmless."""
    studio = StudioRecords(root)
    emptied: set[Path] = set()
    try:
        for entry in entries:
            with studio.locked(entry["stem"]):
                for source_name, destination_name in entry["moves"]:
                    source = _move(root, source_name, destination_name)
                    if source is not None:
                        emptied.add(source.parent)
                studio.record(entry["stem"], entry["generation"], entry["split"])
    finally:
        studio.close()
    (root / JOURNAL).unlink()
    for folder in sorted(emptied, key=lambda path: len(path.parts), reverse=True):
        while folder != root and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent


def run(args: argparse.Namespace) -> int:
    root: Path = args.root
    if not root.is_dir():
        raise ToonmatteError(f"The dataset folder {root} does not exist; pass the folder that holds train/val/test.")
    studio = StudioRecords(root)
    unfinished = studio.unfinished_saves()
    if unfinished:
        raise ToonmatteError(f"The studio has {len(unfinished)} unfinished saves in {root / STUDIO_DIR / 'journal'}, "
                             f"so nothing was moved; start the studio once (it finishes them) and run split again.")
    pending = _read_journal(root)
    if pending is not None:
        if args.dry_run:
            print(f"An interrupted split of {len(pending)} items would be finished first; run without --dry-run.")
            return 0
        print(f"Finishing an interrupted split of {len(pending)} items.")
        _apply(root, pending)
    items = list_items(root)
    if not items:
        raise ToonmatteError(f"No items found under {root}; expected <split>/<generation>/{{im,gt,an}}/<stem>.png files.")
    incomplete = incomplete_items(items)
    if incomplete:
        raise ToonmatteError(
            f"{len(incomplete)} items have an incomplete im/gt/an set, so nothing was moved: "
            f"{describe_missing(incomplete)}; complete or remove them and run split again.")
    _check_unique(items)
    plan = plan_split(items, args.ratios, args.seed)
    entries = _entries(root, plan, studio)
    counts = Counter(plan.values())
    print(f"{len(items)} items: " + ", ".join(f"{split} {counts[split]}" for split in SPLITS)
          + f"; {len(entries)} to move (seed {args.seed}).")
    if args.dry_run:
        for entry in entries:
            print(f"  {entry['from']} -> {entry['split']}/{entry['generation']}/{entry['stem']}")
        print("Dry run: nothing was moved.")
        return 0
    if entries:
        _write_journal(root, entries)
        _apply(root, entries)
    print(f"Moved {len(entries)} items.")
    return 0
