"""A team queue: one folder of images that several annotators work through, handed out as claims.

``TeamQueue.take`` gives a person the next images nobody has saved and nobody else holds, and
claims them for ``ttl`` seconds; saving an item releases its claim. A claim that expired can be
taken by someone else, and then its first holder cannot save the item over them (one sentence
says who holds it). Claims live in their own SQLite file (``.toonmatte/claims.sqlite``): they
coordinate work in progress and are not part of the dataset (the Hub sync never sees them).
"""
from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from toonmatte.dataset import META_DIR, DatasetStore, hash_file
from toonmatte.errors import ToonmatteError
from toonmatte.imaging.imageio import collect_inputs

CLAIM_TTL = 2 * 3600.0
"""How long a claim holds (seconds) before someone else may take the item."""


def _clock_text(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%H:%M UTC")


class Claims:
    """Claims on stems, shared by every process of the studio (SQLite, ``BEGIN IMMEDIATE``)."""

    def __init__(self, path: Path, ttl: float = CLAIM_TTL, clock: Callable[[], float] = time.time) -> None:
        self.ttl, self.clock = ttl, clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS claims (stem TEXT PRIMARY KEY, person TEXT NOT NULL, "
                         "expires REAL NOT NULL)")

    def holder(self, stem: str) -> tuple[str, float] | None:
        """(person, expiry time) of the live claim on ``stem``, if any."""
        with self._lock:
            row = self._db.execute("SELECT person, expires FROM claims WHERE stem = ? AND expires > ?",
                                   (stem, self.clock())).fetchone()
        return (row[0], row[1]) if row else None

    def claim(self, stem: str, person: str) -> bool:
        """Claim ``stem`` for ``person`` (renewing their own claim); False when someone else holds it."""
        now = self.clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT person, expires FROM claims WHERE stem = ?", (stem,)).fetchone()
                free = row is None or row[0] == person or row[1] <= now
                if free:
                    self._db.execute("INSERT OR REPLACE INTO claims (stem, person, expires) VALUES (?, ?, ?)",
                                     (stem, person, now + self.ttl))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return free

    def check(self, stem: str, person: str) -> None:
        """One sentence when someone else holds a live claim on ``stem`` (so ``person`` may not save it)."""
        held = self.holder(stem)
        if held is not None and held[0] != person:
            raise ToonmatteError(f"{held[0]} is working on {stem} (claimed until {_clock_text(held[1])}), so your "
                                 "changes were not saved; skip it, or ask them to save or release it.")

    def release(self, stem: str, person: str) -> None:
        """Drop ``person``'s claim on ``stem`` (a save ends it)."""
        with self._lock:
            self._db.execute("DELETE FROM claims WHERE stem = ? AND person = ?", (stem, person))

    def close(self) -> None:
        with self._lock:
            self._db.close()


class TeamQueue:
    """The images of ``folder`` to be annotated by the team, in path order."""

    def __init__(self, folder: Path, store: DatasetStore, claims: Claims) -> None:
        if not folder.is_dir():
            raise ToonmatteError(f"The team queue {folder} is not a folder; pass the folder of images to annotate.")
        self.folder, self.store, self.claims = folder, store, claims
        self._known: dict[tuple[Path, int, float], tuple[str, str]] = {}  # (path, size, mtime) -> (stem, sha256)

    @classmethod
    def open(cls, folder: Path, store: DatasetStore, ttl: float = CLAIM_TTL) -> TeamQueue:
        return cls(folder, store, Claims(store.root / META_DIR / "claims.sqlite", ttl))

    def _identify(self, path: Path) -> tuple[str, str]:
        """(stem, sha256) of an image of the folder, computed once per version of the file."""
        info = path.stat()
        key = (path, info.st_size, info.st_mtime)
        if key not in self._known:
            digest = hash_file(path)
            with self.store.naming():
                self._known[key] = self.store.stem_for(path.name, digest), digest
        return self._known[key]

    def _stem(self, path: Path) -> str:
        return self._identify(path)[0]

    def digest(self, path: Path) -> str:
        """The sha256 of an image ``take`` returned, as it was hashed to name it (a queue passes it along)."""
        return self._identify(path)[1]

    def take(self, person: str, count: int) -> list[Path]:
        """Claim up to ``count`` images for ``person``, in path order: images nobody has saved and nobody
        else holds (their own claims are renewed). Empty when the team's work is done."""
        taken: list[Path] = []
        for path in collect_inputs([str(self.folder)], recursive=True):
            if len(taken) >= count:
                break
            stem = self._stem(path)
            record = self.store.get(stem)
            if record is not None and record.versions > 0:
                continue  # saved: done, unless a reviewer sends it back through Browse
            if self.claims.claim(stem, person):
                taken.append(path)
        return taken

    def close(self) -> None:
        self.claims.close()
