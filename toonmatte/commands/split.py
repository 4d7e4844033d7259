"""``python -m toonmatte split ROOT``: shuffle a dataset's items into train/val/test as ToonOut did.

ToonOut's rule: sort the stems of the complete im/gt/an triples, shuffle them with seed 0,
and cut 80/10/10 into train/val/test. Here the shuffle is ``random.Random(seed).shuffle``
over the items sorted by (stem, generation); the cuts are at ``round(n * 0.8)`` and
``round(n * 0.9)``. Every split (and any item not split yet) is reshuffled together, so
adding items can move existing ones to another split.

Files are moved, never copied, within the root; each item keeps its generation folder and
its three files always move together. The moves are written to a hidden journal first, so
that an interrupted split is finished by the next run instead of leaving triples apart.
"""
from __future__ import annotations

import argparse
import json
import os
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from toonmatte.dataset import KINDS, SPLITS, Item, describe_missing, incomplete_items, list_items
from toonmatte.errors import ToonmatteError

JOURNAL = ".split-journal.json"


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


def _moves(root: Path, plan: dict[Item, str]) -> list[tuple[str, str]]:
    """(source, destination) file paths relative to ``root`` for the items that change split."""
    moves = []
    for item, split in plan.items():
        if item.split == split:
            continue
        for kind in KINDS:
            source = item.path(kind)
            assert source is not None  # incomplete items are refused before planning
            destination = root / split / item.generation / kind / source.name
            moves.append((source.relative_to(root).as_posix(), destination.relative_to(root).as_posix()))
    return moves


def _write_journal(root: Path, moves: list[tuple[str, str]]) -> None:
    temporary = root / (JOURNAL + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(moves, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, root / JOURNAL)


def _apply(root: Path, moves: list[tuple[str, str]]) -> None:
    """Perform the journal's moves; a move already done (source gone, destination there) is skipped."""
    emptied: set[Path] = set()
    for source_name, destination_name in moves:
        source, destination = root / source_name, root / destination_name
        if not source.exists():
            if destination.exists():
                continue
            raise ToonmatteError(f"{source_name} vanished during the split; restore it and run split again.")
        if destination.exists():
            raise ToonmatteError(f"{destination_name} already exists, so {source_name} was not moved; "
                                 f"remove one of them and run split again.")
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, destination)
        emptied.add(source.parent)
    (root / JOURNAL).unlink()
    for kind_folder in sorted(emptied):
        for folder in (kind_folder, kind_folder.parent):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def _read_journal(root: Path) -> list[tuple[str, str]] | None:
    """The moves of an interrupted split, or None when there is none."""
    journal = root / JOURNAL
    if not journal.exists():
        return None
    return [(source, destination) for source, destination in json.loads(journal.read_text(encoding="utf-8"))]


def run(args: argparse.Namespace) -> int:
    root: Path = args.root
    if not root.is_dir():
        raise ToonmatteError(f"The dataset folder {root} does not exist; pass the folder that holds train/val/test.")
    pending = _read_journal(root)
    if pending is not None:
        if args.dry_run:
            print(f"An interrupted split of {len(pending)} files would be finished first; run without --dry-run.")
            return 0
        print(f"Finishing an interrupted split ({len(pending)} files).")
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
    moves = _moves(root, plan)
    counts = Counter(plan.values())
    moving = [item for item, split in plan.items() if item.split != split]
    print(f"{len(items)} items: " + ", ".join(f"{split} {counts[split]}" for split in SPLITS)
          + f"; {len(moving)} to move (seed {args.seed}).")
    if args.dry_run:
        for item in sorted(moving, key=lambda item: item.name):
            print(f"  {item.name} -> {plan[item]}/{item.generation}/{item.stem}")
        print("Dry run: nothing was moved.")
        return 0
    if moves:
        _write_journal(root, moves)
        _apply(root, moves)
    print(f"Moved {len(moving)} items ({len(moves)} files).")
    return 0
