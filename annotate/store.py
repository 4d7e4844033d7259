"""The studio's dataset store: im/gt/an triples in ToonOut's layout, plus an SQLite index.

Layout (as ToonOut): ``<root>/<split>/<generation>/{im,gt,an}/<stem>.png`` with ``im`` the original
8-bit RGB, ``gt`` the 8-bit single-channel alpha and ``an`` the RGBA cut-out with decontaminated
foreground colours. Hidden folders are not part of the dataset: ``.toonmatte/`` holds the index
(``index.sqlite``), the commit journals, the per-stem lock files and the model's predicted alphas
(``predictions/<stem>.<txid>.png``, see below), and ``.history/`` keeps every replaced version as
``.history/<split>/<generation>/<stem>/<UTC timestamp>/{im,gt,an}.png``.

An item lives in one place: the first save puts a stem under the store's split and generation,
and later saves of that stem (from any store on the same root) replace it there, so the dataset
never holds two triples for one stem.

Atomicity. A save first encodes the three PNGs, then, holding the stem's lock (``fcntl.flock`` on
``.toonmatte/locks/<stem>.lock``, which excludes other threads and other processes alike):

1. writes them to hidden temp names next to their targets (``.<stem>.png.<txid>.tmp``) and fsyncs;
2. if a triple is already there, hard-links its files into a staging folder
   ``.history/.staging/<stem>.<txid>/`` (the old files stay in place);
3. writes the journal ``.toonmatte/journal/<stem>.<txid>.json`` (temp name, fsync, rename): this
   is the commit point; it lists the three renames, the staged history folder and the index row;
4. renames the temps over the targets, moves the staged history folder to its timestamped place,
   upserts the index row, and deletes the journal.

Predicted alphas. A save given the model's ``predicted_alpha`` (the matte the person corrected) also
writes it in step 1 as ``.toonmatte/predictions/<stem>.<txid>.png``, named by the save's transaction
id; the index row's transaction id (set at the commit point) says which file belongs to the current
version, so a prediction can never be paired with another version's ``gt``. After the commit, and
when recovering a stem, the stem's other prediction files are deleted; a version saved without a
prediction has none.

Opening a store recovers from a crash at any moment: a journal present means every temp file is
complete, so step 4 is replayed (each step is idempotent: a temp that is gone was renamed, and the
index row carries the transaction id so a replay does not count a version twice); without a journal,
leftover temp files and staging folders are deleted (the old triple was never touched). Recovery
of a stem happens under its lock, so a save running in another process is never disturbed.

Notes on the API beyond the studio's contract: ``sanitize_stem`` also turns dots into ``_`` (so that
sanitizing a stem again never strips a second "extension"); ``get``/``items``/``progress`` and the
session state cover the whole root, whatever split or generation the store writes new items to;
added are ``hash_file``, ``ItemRecord.created_at``, ``DatasetStore.triple_paths``, ``stem_for``
(a stem for a source that reuses the item of identical bytes and avoids taking another source's
stem), ``find_by_hash``, ``close`` (the store is also a context manager) and ``prediction_pair``
(the current version's predicted alpha and ``gt``, for the studio's quality view).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
import threading
import unicodedata
import uuid
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import cv2
import numpy as np

from toonmatte.errors import ToonmatteError
from toonmatte.png import BandedPng

STATUSES = ("todo", "predicted", "corrected", "skipped", "reviewed")
KINDS = ("im", "gt", "an")
MAX_STEM_LENGTH = 120
INDEX_DIR = ".toonmatte"
PREDICTIONS_DIR = "predictions"
HISTORY_DIR = ".history"
_STAGING = ".staging"
_TXID = r"[0-9a-f]{32}"
_TEMP_FILE = re.compile(rf"^\.(?P<stem>.+)\.png\.(?P<txid>{_TXID})\.tmp$")
_JOURNAL = re.compile(rf"^(?P<stem>.+)\.(?P<txid>{_TXID})\.json(?P<tmp>\.tmp)?$")
_STAGED = re.compile(rf"^(?P<stem>.+)\.(?P<txid>{_TXID})$")
_PREDICTION = re.compile(rf"^(?P<stem>.+)\.(?P<txid>{_TXID})\.png$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}

# Test seam: called with the name of each step of a save ("temps-written", "history-staged",
# "journal-written", "renamed-im", "renamed-gt", "renamed-an", "history-committed", "indexed")
# so that a test can kill the writing process exactly there.
_fault_point: Callable[[str], None] = lambda step: None


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


def hash_file(path: str | Path) -> str:
    """sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


_COLUMNS = ("stem", "split", "generation", "status", "source_path", "source_hash", "model", "model_version",
            "annotator", "updated_at", "changed_fraction", "mean_abs_delta", "versions", "created_at")
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
    last_txid TEXT
);
CREATE INDEX IF NOT EXISTS items_status ON items(status, updated_at);
CREATE INDEX IF NOT EXISTS items_hash ON items(source_hash);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SAFE_NAME.match(value) or len(value) > MAX_STEM_LENGTH:
        raise ToonmatteError(f"The {what} name {value!r} is not allowed; use letters, digits, '.', '_' and '-' only, starting with a letter or digit.")
    return value


def _check_status(status: str) -> str:
    if status not in STATUSES:
        raise ToonmatteError(f"Unknown status {status!r}; use one of {', '.join(STATUSES)}.")
    return status


def _check_images(image: np.ndarray, alpha: np.ndarray, foreground: np.ndarray | None,
                  predicted_alpha: np.ndarray | None) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ToonmatteError(f"The image must be 8-bit RGB (an HxWx3 uint8 array), not {_describe(image)}.")
    size = image.shape[:2]
    if not isinstance(alpha, np.ndarray) or alpha.dtype != np.uint8 or alpha.shape != size:
        raise ToonmatteError(f"The alpha must be a 2-D uint8 matte of the image's size {size}, not {_describe(alpha)}.")
    if foreground is not None and (not isinstance(foreground, np.ndarray) or foreground.dtype != np.uint8
                                   or foreground.shape != (*size, 3)):
        raise ToonmatteError(f"The foreground must be 8-bit RGB of the image's size {size}, not {_describe(foreground)}.")
    if predicted_alpha is not None and (not isinstance(predicted_alpha, np.ndarray)
                                        or predicted_alpha.dtype != np.uint8 or predicted_alpha.shape != size):
        raise ToonmatteError(f"The predicted alpha must be a 2-D uint8 matte of the image's size {size}, not {_describe(predicted_alpha)}.")


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} of shape {value.shape}"
    return type(value).__name__


def _encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 gray, RGB or RGBA array (``toonmatte.png``: zlib level 1 run-length, on a
    few threads): on anime images about 3x faster than OpenCV at level 3 and 0-10 % larger."""
    return BandedPng(array).tobytes()


def _read_png(path: Path) -> np.ndarray:
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ToonmatteError(f"Could not read {path}; the file is missing or damaged.")
    if array.ndim == 3:
        code = cv2.COLOR_BGR2RGB if array.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
        array = cv2.cvtColor(array, code)
    return array


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_path(path: Path) -> None:
    """fsync a file or a folder (a folder's fsync makes its new or renamed entries durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mkdirs(path: Path) -> None:
    """Create ``path`` and its parents, fsyncing each new folder's parent so the entry survives a crash."""
    if path.is_dir():
        return
    _mkdirs(path.parent)
    try:
        path.mkdir()
    except FileExistsError:
        return
    _fsync_path(path.parent)


class DatasetStore:
    """Triples on disk plus the index; safe to share between threads and processes."""

    def __init__(self, root: str | Path, split: str = "train", generation: str | None = None):
        self.root = Path(root).expanduser().resolve()
        self.split = _check_name(split, "split")
        self.generation = _check_name(generation or f"{datetime.now().strftime('%Y-%m-%d')}_studio", "generation")
        meta = self.root / INDEX_DIR
        self._journal_dir = meta / "journal"
        self._lock_dir = meta / "locks"
        self._naming_lock = meta / "naming.lock"  # outside locks/, so no stem's lock file can be it
        self._staging_dir = self.root / HISTORY_DIR / _STAGING
        self._prediction_dir = meta / PREDICTIONS_DIR
        try:
            for folder in (self._journal_dir, self._lock_dir, self._staging_dir, self._prediction_dir):
                _mkdirs(folder)
        except OSError as error:
            raise ToonmatteError(f"Cannot create the dataset folder {self.root} ({error.strerror}); choose a writable dataset root.") from error
        self._db_lock = threading.Lock()
        self._db = sqlite3.connect(meta / "index.sqlite", timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)
        self._recover()

    # ----------------------------------------------------------------- locations
    def _folder(self, split: str, generation: str) -> Path:
        return self.root / split / generation

    def _place(self, stem: str) -> tuple[str, str]:
        """Where ``stem`` lives: its indexed split/generation, else this store's."""
        row = self._query("SELECT split, generation FROM items WHERE stem = ?", (stem,))
        return (row[0][0], row[0][1]) if row else (self.split, self.generation)

    def triple_paths(self, stem: str) -> dict[str, Path]:
        """Paths of the ``im``, ``gt`` and ``an`` files of ``stem`` (whether or not they exist)."""
        stem = sanitize_stem(stem)
        folder = self._folder(*self._place(stem))
        return {kind: folder / kind / f"{stem}.png" for kind in KINDS}

    def _history_parent(self, stem: str, split: str, generation: str) -> Path:
        return self.root / HISTORY_DIR / split / generation / stem

    # --------------------------------------------------------------------- locks
    @staticmethod
    @contextmanager
    def _flock(path: Path, shared: bool = False) -> Iterator[None]:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _stem_lock(self, stem: str, shared: bool = False) -> AbstractContextManager[None]:
        return self._flock(self._lock_dir / f"{stem}.lock", shared)

    def naming(self) -> AbstractContextManager[None]:
        """Hold the store's naming lock (across threads and processes) while choosing a stem with
        ``stem_for`` and making the first write under it (``record`` or ``save_triple``).

        Without it two saves of one new source can interleave so that the second sees the first's
        files before their index row, and takes a suffixed stem for the same image."""
        return self._flock(self._naming_lock)

    # ------------------------------------------------------------------- saving
    def save_triple(self, stem: str, image: np.ndarray, alpha: np.ndarray, *, foreground: np.ndarray | None = None,
                    predicted_alpha: np.ndarray | None = None, source_path: str | None = None,
                    source_hash: str | None = None, model: str | None = None, model_version: str | None = None,
                    annotator: str | None = None, status: str = "corrected",
                    encoded: Mapping[str, bytes] | None = None) -> str:
        """Store a triple atomically (keeping any previous version in history); returns the stored stem.

        ``encoded`` may give PNG bytes already made for "im", "gt", "an" or "prediction"; they are
        stored as they are, so they must decode to exactly ``image``, ``alpha``, the RGBA cut-out
        (``foreground`` with ``alpha``) and ``predicted_alpha`` (the studio keeps such PNGs of what
        it shows, and saving then skips most of the encoding).
        """
        _check_status(status)
        _check_images(image, alpha, foreground, predicted_alpha)
        stem = sanitize_stem(stem)
        encoded = dict(encoded or {})
        if not set(encoded) <= {*KINDS, "prediction"}:
            raise ValueError(f"encoded PNGs can be given for {', '.join(KINDS)} and prediction, not {sorted(encoded)}")
        if foreground is None and "an" not in encoded:
            from toonmatte.foreground import estimate_foreground

            foreground = estimate_foreground(image, alpha)
        changed_fraction = mean_abs_delta = None
        if predicted_alpha is not None:
            from annotate.strokes import change_stats

            changed_fraction, mean_abs_delta = change_stats(predicted_alpha, alpha)
        if source_hash is None and source_path and Path(source_path).is_file():
            source_hash = hash_file(source_path)
        arrays = {"im": lambda: image, "gt": lambda: alpha, "an": lambda: np.dstack([foreground, alpha])}
        if predicted_alpha is not None:
            arrays["prediction"] = lambda: predicted_alpha
        payloads = {kind: encoded[kind] if kind in encoded else _encode_png(array()) for kind, array in arrays.items()}
        prediction = payloads.pop("prediction", None)
        row = {"stem": stem, "status": status, "source_path": None if source_path is None else str(source_path),
               "source_hash": source_hash, "model": model, "model_version": model_version, "annotator": annotator,
               "changed_fraction": changed_fraction, "mean_abs_delta": mean_abs_delta}
        with self._stem_lock(stem):
            self._commit(stem, payloads, row, prediction)
        return stem

    def _commit(self, stem: str, payloads: dict[str, bytes], row: dict[str, Any], prediction: bytes | None) -> None:
        split, generation = self._place(stem)
        folder = self._folder(split, generation)
        txid = uuid.uuid4().hex
        renames = []
        for kind in KINDS:
            _mkdirs(folder / kind)
            temp = folder / kind / f".{stem}.png.{txid}.tmp"
            _write_synced(temp, payloads[kind])
            renames.append((temp, folder / kind / f"{stem}.png"))
        if prediction is not None:  # named by txid: it only counts once the index row carries this txid
            _write_synced(self._prediction_dir / f"{stem}.{txid}.png", prediction)
            _fsync_path(self._prediction_dir)
        _fault_point("temps-written")

        history = None
        existing = [(kind, final) for kind, (_, final) in zip(KINDS, renames) if final.exists()]
        if existing:
            staged = self._staging_dir / f"{stem}.{txid}"
            staged.mkdir()
            for kind, final in existing:
                try:
                    os.link(final, staged / f"{kind}.png")
                except OSError:  # a file system without hard links: copy instead
                    shutil.copyfile(final, staged / f"{kind}.png")
                    _fsync_path(staged / f"{kind}.png")
            _fsync_path(staged)
            _fsync_path(self._staging_dir)
            parent = self._history_parent(stem, split, generation)
            history = (staged, parent / self._history_name(parent))
        _fault_point("history-staged")

        journal = {
            "txid": txid,
            "stem": stem,
            "renames": [[str(t.relative_to(self.root)), str(f.relative_to(self.root))] for t, f in renames],
            "history": None if history is None else [str(p.relative_to(self.root)) for p in history],
            "row": {**row, "split": split, "generation": generation, "updated_at": _now()},
        }
        path = self._journal_dir / f"{stem}.{txid}.json"
        temp = path.with_name(path.name + ".tmp")
        _write_synced(temp, json.dumps(journal).encode())
        os.replace(temp, path)
        _fsync_path(self._journal_dir)
        _fault_point("journal-written")
        self._roll_forward(journal)
        self._drop_stale_predictions(stem, keep=txid)  # before the journal goes: a crash here is redone on recovery
        path.unlink()
        _fsync_path(self._journal_dir)

    def _drop_stale_predictions(self, stem: str, keep: str | None) -> None:
        """Delete ``stem``'s prediction files other than the one of transaction ``keep`` (the current version)."""
        for path in self._prediction_dir.glob(f"{stem}.*.png"):
            match = _PREDICTION.match(path.name)
            if match and match["stem"] == stem and match["txid"] != keep:
                path.unlink(missing_ok=True)

    def _current_txid(self, stem: str) -> str | None:
        rows = self._query("SELECT last_txid FROM items WHERE stem = ?", (stem,))
        return rows[0][0] if rows else None

    @staticmethod
    def _history_name(parent: Path) -> str:
        """A UTC timestamp folder name, sortable, not yet used under ``parent``."""
        moment = datetime.now(timezone.utc)
        existing = {p.name for p in parent.iterdir()} if parent.is_dir() else set()
        while True:
            name = moment.strftime("%Y%m%dT%H%M%S.%fZ")
            if name not in existing and (not existing or name > max(existing)):
                return name
            moment += timedelta(microseconds=1)

    def _roll_forward(self, journal: dict[str, Any]) -> None:
        """Finish a committed save; every step may already have happened."""
        folders = set()
        for kind, (temp, final) in zip(KINDS, journal["renames"]):
            temp_path = self.root / temp
            if temp_path.exists():
                os.replace(temp_path, self.root / final)
                folders.add(temp_path.parent)
            _fault_point(f"renamed-{kind}")
        for folder in folders:
            _fsync_path(folder)
        if journal["history"]:
            staged, dest = (self.root / p for p in journal["history"])
            if staged.exists():
                _mkdirs(dest.parent)
                os.rename(staged, dest)
                _fsync_path(dest.parent)
                _fsync_path(staged.parent)
        _fault_point("history-committed")
        self._upsert_saved(journal["row"], journal["txid"])
        _fault_point("indexed")

    # ------------------------------------------------------------------ recovery
    def _recover(self) -> None:
        """Finish or undo saves interrupted by a crash (see the module docstring)."""
        stems: set[str] = set()
        for entry in os.scandir(self._journal_dir):
            match = _JOURNAL.match(entry.name)
            if match:
                stems.add(match["stem"])
        for entry in os.scandir(self._staging_dir):
            match = _STAGED.match(entry.name)
            if match:
                stems.add(match["stem"])
        temps: dict[str, list[Path]] = {}
        for kind_dir in self._kind_dirs():
            for entry in os.scandir(kind_dir):
                match = _TEMP_FILE.match(entry.name)
                if match:
                    temps.setdefault(match["stem"], []).append(Path(entry.path))
        for stem in sorted(stems | temps.keys()):
            with self._stem_lock(stem):
                self._recover_stem(stem, temps.get(stem, []))

    def _kind_dirs(self) -> Iterator[Path]:
        for split in os.scandir(self.root):
            if split.name.startswith(".") or not split.is_dir():
                continue
            for generation in os.scandir(split.path):
                if generation.name.startswith(".") or not generation.is_dir():
                    continue
                for kind in KINDS:
                    path = Path(generation.path) / kind
                    if path.is_dir():
                        yield path

    def _recover_stem(self, stem: str, temps: list[Path]) -> None:
        committed: set[str] = set()
        for path in sorted(self._journal_dir.glob(f"{stem}.*.json*")):
            match = _JOURNAL.match(path.name)
            if not match or match["stem"] != stem:
                continue
            if match["tmp"]:  # the journal itself was never committed
                path.unlink(missing_ok=True)
                continue
            try:
                journal = json.loads(path.read_text())
            except (OSError, ValueError) as error:
                raise ToonmatteError(f"The save journal {path} is damaged ({error}); move it out of the dataset and restart.") from error
            self._roll_forward(journal)
            committed.add(journal["txid"])
            path.unlink()
        _fsync_path(self._journal_dir)
        for temp in temps:
            temp.unlink(missing_ok=True)
        for staged in self._staging_dir.glob(f"{stem}.*"):
            match = _STAGED.match(staged.name)
            if match and match["stem"] == stem:
                shutil.rmtree(staged, ignore_errors=True)
        self._drop_stale_predictions(stem, keep=self._current_txid(stem))

    # --------------------------------------------------------------------- index
    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._db_lock:
            return self._db.execute(sql, params).fetchall()

    def _write(self, sql: str, params: dict[str, Any] | tuple) -> None:
        with self._db_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(sql, params)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _upsert_saved(self, row: dict[str, Any], txid: str) -> None:
        self._write(
            """INSERT INTO items (stem, split, generation, status, source_path, source_hash, model, model_version,
                                  annotator, created_at, updated_at, changed_fraction, mean_abs_delta, versions, last_txid)
               VALUES (:stem, :split, :generation, :status, :source_path, :source_hash, :model, :model_version,
                       :annotator, :updated_at, :updated_at, :changed_fraction, :mean_abs_delta, 1, :txid)
               ON CONFLICT(stem) DO UPDATE SET
                   split = excluded.split, generation = excluded.generation, status = excluded.status,
                   source_path = COALESCE(excluded.source_path, source_path),
                   source_hash = COALESCE(excluded.source_hash, source_hash),
                   model = COALESCE(excluded.model, model),
                   model_version = COALESCE(excluded.model_version, model_version),
                   annotator = COALESCE(excluded.annotator, annotator),
                   updated_at = excluded.updated_at,
                   changed_fraction = excluded.changed_fraction, mean_abs_delta = excluded.mean_abs_delta,
                   versions = versions + 1, last_txid = excluded.last_txid
               WHERE last_txid IS NOT excluded.last_txid""",
            {**row, "txid": txid})

    def record(self, stem: str, *, status: str, source_path: str | None = None, source_hash: str | None = None,
               model: str | None = None, model_version: str | None = None) -> None:
        """Set an item's status (and metadata) in the index without writing a triple; a new item is
        placed under this store's split and generation. Metadata left as None keeps its old value."""
        _check_status(status)
        stem = sanitize_stem(stem)
        now = _now()
        self._write(
            """INSERT INTO items (stem, split, generation, status, source_path, source_hash, model, model_version,
                                  created_at, updated_at, versions)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)
               ON CONFLICT(stem) DO UPDATE SET
                   status = excluded.status,
                   source_path = COALESCE(excluded.source_path, source_path),
                   source_hash = COALESCE(excluded.source_hash, source_hash),
                   model = COALESCE(excluded.model, model),
                   model_version = COALESCE(excluded.model_version, model_version),
                   updated_at = excluded.updated_at""",
            (stem, self.split, self.generation, status, None if source_path is None else str(source_path),
             source_hash, model, model_version, now, now))

    def get(self, stem: str) -> ItemRecord | None:
        rows = self._query(f"SELECT {', '.join(_COLUMNS)} FROM items WHERE stem = ?", (sanitize_stem(stem),))
        return ItemRecord(*rows[0]) if rows else None

    def find_by_hash(self, source_hash: str) -> ItemRecord | None:
        """The most recently updated item made from a source with this sha256, if any."""
        rows = self._query(f"SELECT {', '.join(_COLUMNS)} FROM items WHERE source_hash = ? "
                           "ORDER BY updated_at DESC LIMIT 1", (source_hash,))
        return ItemRecord(*rows[0]) if rows else None

    def stem_for(self, name: str, source_hash: str | None = None) -> str:
        """The stem to use for a source: the existing item's stem when this source (by hash) is already
        indexed, else the sanitized name, with a hash or counter suffix if another source has it."""
        if source_hash:
            known = self.find_by_hash(source_hash)
            if known is not None:
                return known.stem
        base = sanitize_stem(name)
        candidate, counter = base, 1
        while self._taken(candidate, source_hash):
            suffix = f"-{source_hash[:8]}" if source_hash and counter == 1 else f"-{counter}"
            candidate = sanitize_stem(base[:MAX_STEM_LENGTH - len(suffix)] + suffix)
            counter += 1
        return candidate

    def _taken(self, stem: str, source_hash: str | None) -> bool:
        record = self.get(stem)
        if record is not None:
            return record.source_hash != source_hash or source_hash is None
        return any(path.exists() for path in self.triple_paths(stem).values())

    def items(self, status: str | None = None) -> list[ItemRecord]:
        """Indexed items, newest first, optionally only those with ``status``."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM items"
        params: tuple = ()
        if status is not None:
            sql += " WHERE status = ?"
            params = (_check_status(status),)
        return [ItemRecord(*row) for row in self._query(sql + " ORDER BY updated_at DESC, stem", params)]

    def progress(self) -> dict[str, int]:
        """How many items have each status (every status present, zero when none)."""
        counts = dict(self._query("SELECT status, COUNT(*) FROM items GROUP BY status"))
        return {status: int(counts.get(status, 0)) for status in STATUSES}

    # ------------------------------------------------------------------- reading
    def load_triple(self, stem: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(im RGB HxWx3, gt HxW, an RGBA HxWx4) of a saved stem, read as one consistent version."""
        stem = sanitize_stem(stem)
        paths = self.triple_paths(stem)
        with self._stem_lock(stem, shared=True):
            if not all(path.exists() for path in paths.values()):
                raise ToonmatteError(f"No saved triple for {stem!r} under {self.root}; save it first.")
            return tuple(_read_png(paths[kind]) for kind in KINDS)  # type: ignore[return-value]

    def prediction_pair(self, stem: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(the model's predicted alpha saved with the current version of ``stem``, that version's ``gt``),
        read as one consistent version; None when the stem has no saved triple or was saved without a prediction."""
        stem = sanitize_stem(stem)
        with self._stem_lock(stem, shared=True):
            txid = self._current_txid(stem)
            prediction = self._prediction_dir / f"{stem}.{txid}.png"
            gt = self.triple_paths(stem)["gt"]
            if txid is None or not prediction.exists() or not gt.exists():
                return None
            return _read_png(prediction), _read_png(gt)

    def history(self, stem: str) -> list[Path]:
        """Folders of the previous versions of ``stem`` (each with im.png, gt.png, an.png), oldest first."""
        stem = sanitize_stem(stem)
        parent = self._history_parent(stem, *self._place(stem))
        if not parent.is_dir():
            return []
        return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))

    # --------------------------------------------------------------------- state
    def get_state(self, key: str, default: Any = None) -> Any:
        rows = self._query("SELECT value FROM state WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set_state(self, key: str, value: Any) -> None:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as error:
            raise ToonmatteError(f"Session state {key!r} must be JSON data (numbers, text, lists, dicts): {error}.") from error
        self._write("INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, text))

    def close(self) -> None:
        with self._db_lock:
            self._db.close()

    def __enter__(self) -> "DatasetStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

