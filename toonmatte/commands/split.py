"""``python -m toonmatte split ROOT``: shuffle a dataset's items into train/val/test as ToonOut did.

ToonOut's rule: sort the stems of the complete im/gt/an triples, shuffle them with seed 0,
and cut 80/10/10 into train/val/test. Here the shuffle is ``random.Random(seed).shuffle``
over the items sorted by (stem, generation); the cuts are at ``round(n * 0.8)`` and
``round(n * 0.9)``. Every split (and any item not split yet) is reshuffled together, so
adding items can move existing ones to another split.

Items move through the dataset store (``DatasetStore.move_item``): within the root, never copied,
each keeping its generation folder, its three files and its history moving together under the
stem's lock and a journal, and its index row following it. Opening the store first finishes any
interrupted save or move, and a split interrupted midway is finished by running it again (the
plan depends only on the items, not on where they are now).
"""
from __future__ import annotations

import argparse
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from toonmatte.dataset import SPLITS, DatasetStore, Item, describe_missing, incomplete_items, list_items
from toonmatte.dataset.journal import unfinished_moves
from toonmatte.errors import ToonmatteError


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
        raise argparse.ArgumentTypeError("expected three non-negative fractions summing to 1, "
                                         f"like 0.8,0.1,0.1, got {text!r}")
    return values


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


def run(args: argparse.Namespace) -> int:
    root: Path = args.root
    if not root.is_dir():
        raise ToonmatteError(f"The dataset folder {root} does not exist; pass the folder that holds train/val/test.")
    if args.dry_run:
        unfinished = unfinished_moves(root)
        if unfinished:
            print(f"{unfinished} interrupted moves would be finished first; run without --dry-run.")
            return 0
        _split(None, root, args)
        return 0
    with DatasetStore(root) as store:  # opening it finishes interrupted saves and moves
        _split(store, root, args)
    return 0


def _split(store: DatasetStore | None, root: Path, args: argparse.Namespace) -> None:
    """Plan the split and, given a store, move the items (without one: print the plan)."""
    items = list_items(root)
    if not items:
        raise ToonmatteError(f"No items found under {root}; "
                             "expected <split>/<generation>/{im,gt,an}/<stem>.png files.")
    incomplete = incomplete_items(items)
    if incomplete:
        raise ToonmatteError(
            f"{len(incomplete)} items have an incomplete im/gt/an set, so nothing was moved: "
            f"{describe_missing(incomplete)}; complete or remove them and run split again.")
    _check_unique(items)
    plan = plan_split(items, args.ratios, args.seed)
    moves = sorted(((item, split) for item, split in plan.items() if item.split != split), key=lambda m: m[0].name)
    counts = Counter(plan.values())
    print(f"{len(items)} items: " + ", ".join(f"{split} {counts[split]}" for split in SPLITS)
          + f"; {len(moves)} to move (seed {args.seed}).")
    if store is None:
        for item, split in moves:
            print(f"  {item.name} -> {split}/{item.generation}/{item.stem}")
        print("Dry run: nothing was moved.")
        return
    emptied: set[Path] = set()
    for item, split in moves:
        emptied |= store.move_item(item, split)
    store.prune_empty_folders(emptied)
    print(f"Moved {len(moves)} items.")
