"""The dataset's SQLite index (``.toonmatte/index.sqlite``): one row per item, plus the studio's session state.

A row says where an item lives (split, generation), its status and provenance, and ``last_txid``,
the transaction id of the save that wrote its current files. Committing that row is the commit
point of a save (see ``toonmatte.dataset.store``). SQLite's errors become one sentence naming the
real cause (busy, disk full, read-only), never SQLite's own wording.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from toonmatte.errors import ToonmatteError, WriteError

STATUSES = ("todo", "predicted", "corrected", "skipped", "reviewed", "returned")


@dataclass
class ItemRecord:
    stem: str
    split: str
    generation: str
    status: str
    source_path: str | None
    source_hash: str | None
    model: str | None
    model_version: str | None
    annotator: str | None
    updated_at: str
    changed_fraction: float | None
    mean_abs_delta: float | None
    versions: int
    created_at: str | None = None
    seconds: float | None = None
    pixels: int | None = None


_REVIEW_FIELDS = ("reviewer", "verdict", "comment", "at", "txid")
_COLUMNS = ", ".join(("stem", "split", "generation", "status", "source_path", "source_hash", "model", "model_version",
                      "annotator", "updated_at", "changed_fraction", "mean_abs_delta", "versions", "created_at",
                      "seconds", "pixels"))
_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    stem TEXT PRIMARY KEY,
    split TEXT NOT NULL,
    generation TEXT NOT NULL,
    status TEXT NOT NULL,
    source_path TEXT,
    source_hash TEXT,
    model TEXT,
    model_version TEXT,
    annotator TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    changed_fraction REAL,
    mean_abs_delta REAL,
    versions INTEGER NOT NULL DEFAULT 0,
    last_txid TEXT,
    seconds REAL,
    pixels INTEGER
);
CREATE INDEX IF NOT EXISTS items_status ON items(status, updated_at);
CREATE INDEX IF NOT EXISTS items_hash ON items(source_hash);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reviews (stem TEXT NOT NULL, reviewer TEXT NOT NULL, verdict TEXT NOT NULL,
                                    comment TEXT NOT NULL, at TEXT NOT NULL, txid TEXT);
CREATE INDEX IF NOT EXISTS reviews_stem ON reviews(stem, at);
"""
_UPSERT_SAVED = """
INSERT INTO items (stem, split, generation, status, source_path, source_hash, model, model_version,
                   annotator, created_at, updated_at, changed_fraction, mean_abs_delta, versions, last_txid,
                   seconds, pixels)
VALUES (:stem, :split, :generation, :status, :source_path, :source_hash, :model, :model_version,
        :annotator, :updated_at, :updated_at, :changed_fraction, :mean_abs_delta, 1, :txid, :seconds, :pixels)
ON CONFLICT(stem) DO UPDATE SET
    split = excluded.split, generation = excluded.generation, status = excluded.status,
    source_path = COALESCE(excluded.source_path, source_path),
    source_hash = COALESCE(excluded.source_hash, source_hash),
    model = COALESCE(excluded.model, model),
    model_version = COALESCE(excluded.model_version, model_version),
    annotator = COALESCE(excluded.annotator, annotator),
    updated_at = excluded.updated_at,
    changed_fraction = excluded.changed_fraction, mean_abs_delta = excluded.mean_abs_delta,
    versions = versions + 1, last_txid = excluded.last_txid, seconds = excluded.seconds, pixels = excluded.pixels
"""
_PUT = (f"INSERT OR REPLACE INTO items ({_COLUMNS}, last_txid) VALUES ("
        + ", ".join(f":{column}" for column in _COLUMNS.split(", ")) + ", :last_txid)")
_RECORD = """
INSERT INTO items (stem, split, generation, status, source_path, source_hash, model, model_version,
                   created_at, updated_at, versions)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)
ON CONFLICT(stem) DO UPDATE SET
    status = excluded.status,
    source_path = COALESCE(excluded.source_path, source_path),
    source_hash = COALESCE(excluded.source_hash, source_hash),
    model = COALESCE(excluded.model, model),
    model_version = COALESCE(excluded.model_version, model_version),
    updated_at = excluded.updated_at
"""

_ADDED_COLUMNS = (("seconds", "REAL"), ("pixels", "INTEGER"))
"""Columns added to ``items`` after its first version: how long the item was open before its save
(seconds), and its size (pixels), for the time per item and changed pixels per minute."""

# SQLite's primary result codes (the low byte of sqlite_errorcode) that a person can act on.
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26


def now() -> str:
    """The current UTC time as an ISO 8601 string with microseconds (sortable as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def check_status(status: str) -> str:
    if status not in STATUSES:
        raise ToonmatteError(f"Unknown status {status!r}; use one of {', '.join(STATUSES)}.")
    return status


def index_error(error: sqlite3.Error, outcome: str) -> ToonmatteError:
    """One sentence for an SQLite failure; ``outcome`` says what it means, e.g. "nothing was saved"."""
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    text = str(error).lower()
    if code in (_BUSY, _LOCKED) or "locked" in text:
        return WriteError(f"The dataset index is locked by another program, so {outcome}; "
                          "wait until that program has finished (or close it) and try again.")
    if code == _FULL or "full" in text:
        return WriteError(f"The disk holding the dataset is full, so {outcome}; free some space and try again.")
    if code == _READONLY or "readonly" in text or "read-only" in text:
        return WriteError(f"The dataset folder is read-only, so {outcome}; choose a writable dataset folder.")
    if code in (_CORRUPT, _NOTADB):
        return ToonmatteError(f"The dataset index .toonmatte/index.sqlite is damaged, so {outcome}; "
                              "move it aside (the triples stay) and start again.")
    if code == _CANTOPEN:
        return WriteError(f"The dataset index could not be opened, so {outcome}; "
                          "check that the dataset folder is writable.")
    return WriteError(f"The dataset index failed ({error}), so {outcome}; check the disk and try again.")


class ItemIndex:
    """The index of one dataset root; one connection shared by the store's threads."""

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.executescript(_SCHEMA)
            known = {row[1] for row in self._db.execute("PRAGMA table_info(items)")}
            for column, kind in _ADDED_COLUMNS:  # an index written before these columns existed
                if column not in known:
                    self._db.execute(f"ALTER TABLE items ADD COLUMN {column} {kind}")
        except sqlite3.Error as error:
            raise index_error(error, "the dataset could not be opened") from None

    # ------------------------------------------------------------------ writing
    @contextmanager
    def transaction(self, outcome: str) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``: the write lock is taken at once or the busy timeout
        passes), committed when the block ends and rolled back when it raises. ``outcome`` is what a
        failure means to the person, for the error sentence."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                raise index_error(error, outcome) from None
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as error:
                if self._db.in_transaction:  # SQLite may have rolled back already (a full disk does)
                    self._db.execute("ROLLBACK")
                if isinstance(error, sqlite3.Error):
                    raise index_error(error, outcome) from None
                raise

    def upsert_saved(self, db: sqlite3.Connection, row: dict[str, Any], txid: str) -> None:
        """Inside ``transaction``: the row of a saved version (a new item, or one more version)."""
        db.execute(_UPSERT_SAVED, {**row, "txid": txid})

    def put(self, db: sqlite3.Connection, row: dict[str, Any]) -> None:
        """Inside ``transaction``: an item's whole row exactly as given (restoring a dataset)."""
        db.execute(_PUT, row)

    def record(self, stem: str, split: str, generation: str, status: str, source_path: str | None,
               source_hash: str | None, model: str | None, model_version: str | None) -> None:
        """Set an item's status and metadata without a new version (None keeps the old value)."""
        stamp = now()
        with self.transaction("the item's status was not changed") as db:
            db.execute(_RECORD, (stem, split, generation, check_status(status), source_path, source_hash, model,
                                 model_version, stamp, stamp))

    def place(self, db: sqlite3.Connection, stem: str, generation: str, split: str) -> None:
        """Inside ``transaction``: an item moved to another split."""
        db.execute("UPDATE items SET split = ? WHERE stem = ? AND generation = ?", (split, stem, generation))

    def set_state(self, key: str, value: Any) -> None:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as error:
            raise ToonmatteError(f"Session state {key!r} must be JSON data (numbers, "
                                 f"text, lists, dicts): {error}.") from error
        with self.transaction("the session was not remembered") as db:
            db.execute("INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                       "SET value = excluded.value",
                       (key, text))

    # ------------------------------------------------------------------ reading
    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as error:
                raise index_error(error, "the dataset could not be read") from None

    def get(self, stem: str) -> ItemRecord | None:
        rows = self.query(f"SELECT {_COLUMNS} FROM items WHERE stem = ?", (stem,))
        return ItemRecord(*rows[0]) if rows else None

    def find_by_hash(self, source_hash: str) -> ItemRecord | None:
        rows = self.query(f"SELECT {_COLUMNS} FROM items WHERE source_hash = ? ORDER BY updated_at DESC LIMIT 1",
                          (source_hash,))
        return ItemRecord(*rows[0]) if rows else None

    def items(self, status: str | None = None) -> list[ItemRecord]:
        params: tuple[str, ...]
        sql, params = f"SELECT {_COLUMNS} FROM items", ()
        if status is not None:
            sql, params = sql + " WHERE status = ?", (check_status(status),)
        return [ItemRecord(*row) for row in self.query(sql + " ORDER BY updated_at DESC, stem", params)]

    def progress(self) -> dict[str, int]:
        counts = dict(self.query("SELECT status, COUNT(*) FROM items GROUP BY status"))
        return {status: int(counts.get(status, 0)) for status in STATUSES}

    def last_txid(self, stem: str) -> str | None:
        rows = self.query("SELECT last_txid FROM items WHERE stem = ?", (stem,))
        return rows[0][0] if rows else None

    def location(self, stem: str) -> tuple[str, str] | None:
        rows = self.query("SELECT split, generation FROM items WHERE stem = ?", (stem,))
        return (rows[0][0], rows[0][1]) if rows else None

    def review(self, stem: str, reviewer: str, approved: bool, comment: str) -> None:
        """Approve the current version of ``stem`` (status "reviewed") or send it back ("returned"),
        logging who, when, the verdict and the comment against the version's txid."""
        stamp = now()
        with self.transaction("the review was not recorded") as db:
            row = db.execute("SELECT last_txid FROM items WHERE stem = ? AND versions > 0", (stem,)).fetchone()
            if row is None:
                raise ToonmatteError(f"{stem} has no saved version to review; save it first.")
            db.execute("UPDATE items SET status = ?, updated_at = ? WHERE stem = ?",
                       ("reviewed" if approved else "returned", stamp, stem))
            db.execute("INSERT INTO reviews (stem, reviewer, verdict, comment, at, txid) VALUES (?, ?, ?, ?, ?, ?)",
                       (stem, reviewer, "approved" if approved else "returned", comment, stamp, row[0]))

    def reviews(self, stem: str) -> list[dict[str, Any]]:
        """Every review of ``stem``, oldest first: reviewer, verdict, comment, at and the reviewed version's txid."""
        rows = self.query("SELECT reviewer, verdict, comment, at, txid FROM reviews WHERE stem = ? ORDER BY at, rowid",
                          (stem,))
        return [dict(zip(_REVIEW_FIELDS, row)) for row in rows]

    def put_reviews(self, db: sqlite3.Connection, stem: str, reviews: Iterable[Mapping[str, Any]]) -> None:
        """Inside ``transaction``: ``stem``'s reviews exactly as given, in place of any it had (restoring)."""
        db.execute("DELETE FROM reviews WHERE stem = ?", (stem,))
        db.executemany("INSERT INTO reviews (stem, reviewer, verdict, comment, at, txid) VALUES (?, ?, ?, ?, ?, ?)",
                       [(stem, *(review.get(name) for name in _REVIEW_FIELDS)) for review in reviews])

    def last_review(self, stem: str) -> tuple[str, str, str, str] | None:
        """(reviewer, verdict, comment, time) of the latest review of ``stem``, if any."""
        rows = self.query("SELECT reviewer, verdict, comment, at FROM reviews WHERE stem = ? ORDER BY at DESC LIMIT 1",
                          (stem,))
        return tuple(rows[0]) if rows else None

    def get_state(self, key: str, default: Any = None) -> Any:
        rows = self.query("SELECT value FROM state WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def close(self) -> None:
        with self._lock:
            self._db.close()
