"""What an interrupted write leaves behind, and how it is finished or undone.

A **save** writes each new file under a hidden temp name next to its target,
``.<stem>.png.<txid>.tmp``, the model's predicted alpha as ``.toonmatte/predictions/<stem>.<txid>.png``,
and hard links of the files it replaces into ``.history/.staging/<stem>.<txid>/``. Its commit point
is the index row that carries its ``txid`` (``toonmatte.dataset.index``): after a crash, leftovers of
the committed txid are rolled forward (temps renamed over their targets, the staged folder moved
into the history) and every other txid's leftovers are deleted, since nothing visible was touched.

A **move** (``split``) renames whole triples and their history folders. It writes a journal,
``.toonmatte/journal/<stem>.<txid>.json`` (temp name, fsync, rename: the commit point), listing the
renames and the index change, then performs them; a journal found later is replayed, and every step
of a replay is idempotent (a rename whose source is gone and whose destination exists was done).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from toonmatte.dataset.files import fsync_path, make_dirs, write_synced
from toonmatte.dataset.layout import META_DIR
from toonmatte.errors import ToonmatteError

_TXID = r"[0-9a-f]{32}"
TEMP_FILE = re.compile(rf"^\.(?P<stem>.+)\.png\.(?P<txid>{_TXID})\.tmp$")
JOURNAL = re.compile(rf"^(?P<stem>.+)\.(?P<txid>{_TXID})\.json(?P<tmp>\.tmp)?$")
STAGED = re.compile(rf"^(?P<stem>.+)\.(?P<txid>{_TXID})$")
PREDICTION = re.compile(rf"^(?P<stem>.+)\.(?P<txid>{_TXID})\.png$")


def temp_name(stem: str, txid: str) -> str:
    """The hidden name a save writes a file under before it is renamed to ``<stem>.png``."""
    return f".{stem}.png.{txid}.tmp"


def write_journal(folder: Path, entry: dict[str, Any]) -> Path:
    """Commit a move: write its journal durably under its final name; returns the journal's path."""
    path = folder / f"{entry['stem']}.{entry['txid']}.json"
    temp = path.with_name(path.name + ".tmp")
    write_synced(temp, json.dumps(entry).encode())
    os.replace(temp, path)
    fsync_path(folder)
    return path


def read_journal(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ToonmatteError(f"The move journal .toonmatte/journal/{path.name} is damaged ({error}); "
                             "move it out of the dataset and start again.") from None


def journals(folder: Path, stem: str | None = None) -> list[Path]:
    """Committed journals in ``folder`` (of ``stem`` only, when given); uncommitted ones
    (``.json.tmp``) are deleted, as their moves never started."""
    found = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        match = JOURNAL.match(entry.name)
        if not match or (stem is not None and match["stem"] != stem):
            continue
        if match["tmp"]:
            Path(entry.path).unlink(missing_ok=True)
        else:
            found.append(Path(entry.path))
    return found


def replay_moves(root: Path, moves: list[list[str]]) -> set[Path]:
    """Perform a journal's renames (paths relative to ``root``); returns the folders they emptied from."""
    sources: set[Path] = set()
    touched: set[Path] = set()
    for source_name, destination_name in moves:
        source, destination = root / source_name, root / destination_name
        if not source.exists():
            if destination.exists():
                continue  # done before the interruption
            raise ToonmatteError(f"{source_name} vanished during a move; restore it and run the command again.")
        if destination.exists():
            raise ToonmatteError(f"{destination_name} already exists, so {source_name} was not moved; "
                                 "remove one of them and run the command again.")
        make_dirs(destination.parent)
        os.rename(source, destination)
        sources.add(source.parent)
        touched.update((source.parent, destination.parent))
    for folder in touched:
        fsync_path(folder)
    return sources


def unfinished_moves(root: Path) -> int:
    """How many committed move journals wait under ``root`` (read-only: nothing is replayed or deleted)."""
    folder = root / META_DIR / "journal"
    return sum(1 for path in folder.glob("*.json") if JOURNAL.match(path.name)) if folder.is_dir() else 0
