"""The dataset store: im/gt/an triples in ToonOut's layout (``layout``), the SQLite index (``index``)
and crash recovery (``journal``), safe to share between threads and processes.

An item lives in one place: the first save puts a stem under the store's split and generation, and
later saves of that stem (from any store on the same root) replace it there, so the dataset never
holds two triples for one stem. Every replaced version is kept in the history.

A save gets the three PNGs already encoded (an ``EncodedTriple``, ``toonmatte.dataset.triple``); then,
holding the stem's lock (``fcntl.flock`` on ``.toonmatte/locks/<stem>.lock``, which excludes other
threads and other processes alike), it:

1. writes them under temp names next to their targets and fsyncs (with the model's predicted alpha,
   when given, as ``.toonmatte/predictions/<stem>.<txid>.png``);
2. hard-links the triple it replaces, if any, into ``.history/.staging/<stem>.<txid>/``;
3. commits the item's index row carrying the save's txid: the commit point. If the index cannot be
   written (locked by another program, disk full), the temps and the staged links are deleted and
   the save fails with one sentence: nothing visible changed, and a retry is a fresh save;
4. renames the temps over the targets, moves the staged folder to its timestamped history place and
   deletes the previous version's predicted alpha.

A crash before step 3 leaves only hidden leftovers, which recovery deletes; after it, recovery finishes
step 4. Recovery runs when a store opens (for every stem, under its lock) and, for the stem being
saved or moved, before each save and move. ``move_item`` (the split command) moves a whole triple and
its history through a journal; see ``toonmatte.dataset.journal``.

Callbacks given to ``add_listener`` (the Hub sync, ``toonmatte.dataset.hub``) are called after each
committed save and move, still holding the stem's lock, so they see that version's files and index
row and no later one.

Every OS or SQLite failure on a write path becomes a ``WriteError`` whose sentence names the cause
(disk full, permission, read-only, a file in the way) and no server path, and leaves no temp file.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from toonmatte.dataset import journal
from toonmatte.dataset.files import fsync_path, make_dirs, read_png, write_synced
from toonmatte.dataset.index import ItemIndex, ItemRecord, check_status, now
from toonmatte.dataset.layout import (
    HISTORY_DIR,
    KINDS,
    MAX_STEM_LENGTH,
    META_DIR,
    Item,
    check_folder_name,
    history_folder,
    sanitize_stem,
    triple_paths,
)
from toonmatte.dataset.triple import EncodedTriple
from toonmatte.errors import ToonmatteError, write_error

PREDICTIONS_DIR = "predictions"
logger = logging.getLogger(__name__)
_STAGING = ".staging"
_SAVE = "The dataset"

# Test seam: called with the name of each step of a save ("temps-written", "history-staged", "indexed",
# "renamed-im", "renamed-gt", "renamed-an", "history-committed") so a test can stop the writer there.
def _fault_point(step: str) -> None:
    """Does nothing; tests replace it."""


@contextmanager
def _flock(path: Path, shared: bool = False) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def _os_errors(what: str) -> Iterator[None]:
    """Turn an OS error in the block into one ``WriteError`` sentence about ``what``."""
    try:
        yield
    except OSError as error:
        raise write_error(error, what) from None


class DatasetStore:
    """Triples on disk plus the index; safe to share between threads and processes.

    ``busy_timeout`` is how long a write waits for another program's lock on the index before it
    gives up with a sentence. Opening refuses a root that cannot be written.
    """

    def __init__(self, root: str | Path, split: str = "train", generation: str | None = None,
                 busy_timeout: float = 10.0) -> None:
        self.root = Path(root).expanduser().resolve()
        self.split = check_folder_name(split, "split")
        self.generation = check_folder_name(generation or f"{datetime.now().strftime('%Y-%m-%d')}_studio", "generation")
        meta = self.root / META_DIR
        self._journal_dir = meta / "journal"
        self._lock_dir = meta / "locks"
        self._naming_lock = meta / "naming.lock"  # outside locks/, so no stem's lock file can be it
        self._staging_dir = self.root / HISTORY_DIR / _STAGING
        self._prediction_dir = meta / PREDICTIONS_DIR
        with _os_errors(f"The dataset folder {self.root}"):
            for folder in (self._journal_dir, self._lock_dir, self._staging_dir, self._prediction_dir):
                make_dirs(folder)
            probe = meta / f".probe.{uuid.uuid4().hex}"
            write_synced(probe, b"")
            probe.unlink()
        self._index = ItemIndex(meta / "index.sqlite", busy_timeout)
        self._listeners: list[Callable[[str, str], None]] = []
        self._recover()

    # ----------------------------------------------------------------- locations
    def _place(self, stem: str) -> tuple[str, str]:
        """Where ``stem`` lives: its indexed split/generation, else this store's."""
        return self._index.location(stem) or (self.split, self.generation)

    def triple_paths(self, stem: str) -> dict[str, Path]:
        """Paths of the ``im``, ``gt`` and ``an`` files of ``stem`` (whether or not they exist)."""
        stem = sanitize_stem(stem)
        return triple_paths(self.root, *self._place(stem), stem)

    # --------------------------------------------------------------------- locks
    def _stem_lock(self, stem: str, shared: bool = False) -> AbstractContextManager[None]:
        return _flock(self._lock_dir / f"{stem}.lock", shared)

    @contextmanager
    def naming(self) -> Iterator[None]:
        """Hold the store's naming lock (across threads and processes) while choosing a stem with
        ``stem_for`` and making the first write under it (``record`` or ``save_triple``).

        Without it two saves of one new source can interleave so that the second sees the first's
        files before their index row, and takes a suffixed stem for the same image."""
        with _os_errors(_SAVE), _flock(self._naming_lock):
            yield

    # ------------------------------------------------------------------- saving
    def save_triple(self, stem: str, triple: EncodedTriple, *, source_path: str | None = None,
                    source_hash: str | None = None, model: str | None = None, model_version: str | None = None,
                    annotator: str | None = None, status: str = "corrected", seconds: float | None = None) -> str:
        """Store ``triple`` (see ``toonmatte.dataset.triple``) atomically under ``stem``, keeping any previous
        version in history; returns the stored stem.

        The rest is recorded in the item's index row as given: ``source_hash`` is the sha256 of the
        source file, which the caller has already computed (the store never reads the source),
        ``seconds`` how long the person had the item open before this save.
        """
        check_status(status)
        if not isinstance(triple, EncodedTriple):
            raise ToonmatteError(f"save_triple takes an EncodedTriple (see encode_triple), "
                                 f"not {type(triple).__name__}.")
        stem = sanitize_stem(stem)
        height, width = triple.size
        changed_fraction, mean_abs_delta = triple.changes if triple.changes is not None else (None, None)
        payloads = {"im": triple.im, "gt": triple.gt, "an": triple.an}
        row = {"stem": stem, "status": status, "source_path": None if source_path is None else str(source_path),
               "source_hash": source_hash, "model": model, "model_version": model_version, "annotator": annotator,
               "changed_fraction": changed_fraction, "mean_abs_delta": mean_abs_delta, "seconds": seconds,
               "pixels": height * width}
        with _os_errors(_SAVE), self._stem_lock(stem):
            self._recover_stem(stem)
            self._commit(stem, payloads, row, triple.prediction)
            self._notify("save", stem)
        return stem

    def _commit(self, stem: str, payloads: dict[str, bytes], row: dict[str, Any], prediction: bytes | None) -> None:
        split, generation = self._place(stem)
        targets = triple_paths(self.root, split, generation, stem)
        previous = self._index.last_txid(stem)
        txid = uuid.uuid4().hex
        try:
            for kind in KINDS:
                self._write_temp(targets[kind], journal.temp_name(stem, txid), payloads[kind])
            if prediction is not None:  # named by txid: it only counts once the index row carries this txid
                write_synced(self._prediction_dir / f"{stem}.{txid}.png", prediction)
                fsync_path(self._prediction_dir)
            _fault_point("temps-written")
            if self._stage_history(stem, txid, targets):  # its folder now, so nothing after the commit allocates
                make_dirs(history_folder(self.root, split, generation, stem))
            _fault_point("history-staged")
            with self._index.transaction("nothing was saved") as db:
                self._index.upsert_saved(db, {**row, "split": split, "generation": generation, "updated_at": now()},
                                         txid)
        except BaseException:
            self._discard(stem, txid, targets)
            raise
        _fault_point("indexed")
        self._finish(stem, txid, split, generation)
        if previous is not None:
            (self._prediction_dir / f"{stem}.{previous}.png").unlink(missing_ok=True)

    @staticmethod
    def _write_temp(target: Path, name: str, data: bytes) -> None:
        """Write ``data`` durably as ``name`` beside ``target``; a folder removed meanwhile (``split``
        prunes emptied folders) is created again once."""
        for attempt in (1, 2):
            make_dirs(target.parent)
            try:
                write_synced(target.parent / name, data)
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise

    def _stage_history(self, stem: str, txid: str, targets: dict[str, Path]) -> bool:
        """Hard-link the files a save replaces into its staging folder; False when there are none."""
        existing = [(kind, path) for kind, path in targets.items() if path.exists()]
        if not existing:
            return False
        staged = self._staging_dir / f"{stem}.{txid}"
        staged.mkdir()
        for kind, path in existing:
            link_or_copy(path, staged / f"{kind}.png")
        fsync_path(staged)
        fsync_path(self._staging_dir)
        return True

    def _discard(self, stem: str, txid: str, targets: dict[str, Path]) -> None:
        """Delete an uncommitted save's leftovers (never raises: it runs while another error propagates)."""
        for target in targets.values():
            try:
                (target.parent / journal.temp_name(stem, txid)).unlink(missing_ok=True)
            except OSError:
                pass
        try:
            (self._prediction_dir / f"{stem}.{txid}.png").unlink(missing_ok=True)
        except OSError:
            pass
        shutil.rmtree(self._staging_dir / f"{stem}.{txid}", ignore_errors=True)

    def _finish(self, stem: str, txid: str, split: str, generation: str) -> None:
        """Put a committed save's files in place; every step may already have happened."""
        folders = set()
        for kind, target in triple_paths(self.root, split, generation, stem).items():
            temp = target.parent / journal.temp_name(stem, txid)
            if temp.exists():
                os.replace(temp, target)
                folders.add(target.parent)
            _fault_point(f"renamed-{kind}")
        for folder in folders:
            fsync_path(folder)
        staged = self._staging_dir / f"{stem}.{txid}"
        if staged.exists():
            parent = history_folder(self.root, split, generation, stem)
            make_dirs(parent)
            os.rename(staged, parent / self._history_name(parent))
            fsync_path(parent)
            fsync_path(self._staging_dir)
        _fault_point("history-committed")

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

    # -------------------------------------------------------------------- moving
    def move_item(self, item: Item, split: str) -> set[Path]:
        """Move an item's triple (and its history) to ``split``, keeping its generation and stem, and
        update its index row; returns the folders its files left. Atomic through a journal."""
        check_folder_name(split, "split")
        with _os_errors("The dataset"), self._stem_lock(item.stem):
            self._recover_stem(item.stem)
            destinations = triple_paths(self.root, split, item.generation, item.stem)
            in_the_way = [path for path in destinations.values() if path.exists()]
            if in_the_way:
                raise ToonmatteError(f"{in_the_way[0].relative_to(self.root)} already exists, so {item.name} was not "
                                     "moved; remove one of them and run the command again.")
            moves = []
            for kind in KINDS:
                source = item.path(kind)
                if source is None or not source.exists():
                    raise ToonmatteError(f"{item.name} lost its {kind} file before it could be moved; "
                                         "restore it and run the command again.")
                moves.append((source, destinations[kind]))
            old = history_folder(self.root, item.split, item.generation, item.stem)
            if item.split is not None and old.is_dir():
                new = history_folder(self.root, split, item.generation, item.stem)
                moves += [(version, new / version.name) for version in sorted(old.iterdir()) if version.is_dir()]
            entry = {"txid": uuid.uuid4().hex, "stem": item.stem, "generation": item.generation, "split": split,
                     "moves": [[str(a.relative_to(self.root)), str(b.relative_to(self.root))] for a, b in moves]}
            emptied = self._replay(journal.write_journal(self._journal_dir, entry), entry)
            self._notify("move", item.stem)
            return emptied

    def _replay(self, path: Path, entry: dict[str, Any]) -> set[Path]:
        emptied = journal.replay_moves(self.root, entry["moves"])
        with self._index.transaction("the move was not recorded in the index") as db:
            self._index.place(db, entry["stem"], entry["generation"], entry["split"])
        path.unlink()
        fsync_path(self._journal_dir)
        return emptied

    def prune_empty_folders(self, folders: set[Path]) -> None:
        """Remove each folder that is empty, and then its emptied parents, up to the root."""
        for folder in sorted(folders, key=lambda path: len(path.parts), reverse=True):
            while folder != self.root and folder.is_relative_to(self.root):
                try:
                    folder.rmdir()
                except OSError:  # not empty (or gone, or a save just created it again)
                    break
                folder = folder.parent

    # ------------------------------------------------------------------ recovery
    def _recover(self) -> None:
        """Finish or undo writes interrupted by a crash, stem by stem under each stem's lock."""
        with _os_errors(f"The dataset folder {self.root}"):
            stems = {match["stem"] for path in journal.journals(self._journal_dir)
                     if (match := journal.JOURNAL.match(path.name))}
            for entry in os.scandir(self._staging_dir):
                match = journal.STAGED.match(entry.name)
                if match:
                    stems.add(match["stem"])
            for entry in os.scandir(self._prediction_dir):
                match = journal.PREDICTION.match(entry.name)
                if match:
                    stems.add(match["stem"])
            temps: dict[str, list[Path]] = {}
            for kind_dir in self._kind_dirs():
                for entry in os.scandir(kind_dir):
                    match = journal.TEMP_FILE.match(entry.name)
                    if match:
                        temps.setdefault(match["stem"], []).append(Path(entry.path))
            for stem in sorted(stems | temps.keys()):
                with self._stem_lock(stem):
                    self._recover_stem(stem, orphans=temps.get(stem, []))

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

    def _recover_stem(self, stem: str, orphans: list[Path] | None = None) -> None:
        """Under the stem's lock: replay its move journals, finish its committed save, and (when
        ``orphans`` lists temps found when opening) delete what uncommitted saves left."""
        for path in journal.journals(self._journal_dir, stem):
            self._replay(path, journal.read_journal(path))
        committed = self._index.last_txid(stem)
        if committed is not None:
            split, generation = self._place(stem)
            temps = [target.parent / journal.temp_name(stem, committed)
                     for target in triple_paths(self.root, split, generation, stem).values()]
            if any(temp.exists() for temp in temps) or (self._staging_dir / f"{stem}.{committed}").exists():
                self._finish(stem, committed, split, generation)
        if orphans is None:
            return
        for temp in orphans:
            temp.unlink(missing_ok=True)
        for staged in self._staging_dir.glob(f"{stem}.*"):
            match = journal.STAGED.match(staged.name)
            if match and match["stem"] == stem:
                shutil.rmtree(staged, ignore_errors=True)
        for path in self._prediction_dir.glob(f"{stem}.*.png"):
            match = journal.PREDICTION.match(path.name)
            if match and match["stem"] == stem and match["txid"] != committed:
                path.unlink(missing_ok=True)

    # --------------------------------------------------------------------- index
    def record(self, stem: str, *, status: str, source_path: str | None = None, source_hash: str | None = None,
               model: str | None = None, model_version: str | None = None) -> None:
        """Set an item's status (and metadata) in the index without writing a triple; a new item is
        placed under this store's split and generation. Metadata left as None keeps its old value."""
        self._index.record(sanitize_stem(stem), self.split, self.generation, status,
                           None if source_path is None else str(source_path), source_hash, model, model_version)

    def get(self, stem: str) -> ItemRecord | None:
        return self._index.get(sanitize_stem(stem))

    def committed_txid(self, stem: str) -> str | None:
        """The txid of the save that wrote the current files of ``stem`` (None if it has none)."""
        return self._index.last_txid(sanitize_stem(stem))

    def find_by_hash(self, source_hash: str) -> ItemRecord | None:
        """The most recently updated item made from a source with this sha256, if any."""
        return self._index.find_by_hash(source_hash)

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
        return self._index.items(status)

    def progress(self) -> dict[str, int]:
        """How many items have each status (every status present, zero when none)."""
        return self._index.progress()

    # ------------------------------------------------------------------- reading
    def load_triple(self, stem: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(im RGB HxWx3, gt HxW, an RGBA HxWx4) of a saved stem, read as one consistent version."""
        stem = sanitize_stem(stem)
        paths = self.triple_paths(stem)
        with self._stem_lock(stem, shared=True):
            if not all(path.exists() for path in paths.values()):
                raise ToonmatteError(f"No saved triple for {stem!r} in the dataset; save it first.")
            return tuple(read_png(paths[kind]) for kind in KINDS)  # type: ignore[return-value]

    def prediction_pair(self, stem: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(the model's predicted alpha saved with the current version of ``stem``, that version's ``gt``),
        read as one consistent version; None when the stem has no saved triple or was saved without a prediction."""
        stem = sanitize_stem(stem)
        with self._stem_lock(stem, shared=True):
            txid = self._index.last_txid(stem)
            prediction = self._prediction_dir / f"{stem}.{txid}.png"
            gt = self.triple_paths(stem)["gt"]
            if txid is None or not prediction.exists() or not gt.exists():
                return None
            return read_png(prediction), read_png(gt)

    def history(self, stem: str) -> list[Path]:
        """Folders of the previous versions of ``stem`` (each with im.png, gt.png, an.png), oldest first."""
        stem = sanitize_stem(stem)
        parent = history_folder(self.root, *self._place(stem), stem)
        if not parent.is_dir():
            return []
        return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))

    # ----------------------------------------------------------------- listeners
    def add_listener(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(event, stem)`` after each committed "save" and "move" through this store,
        holding the stem's lock. What it raises is logged, never passed on: the change it reports is
        already committed."""
        self._listeners.append(callback)

    def _notify(self, event: str, stem: str) -> None:
        for callback in self._listeners:
            try:
                callback(event, stem)
            except Exception:
                logger.exception("A dataset listener failed after the %s of %s", event, stem)

    def locked(self, stem: str) -> AbstractContextManager[None]:
        """Hold the lock of ``stem`` that saves and moves hold, so its files and index row stay one version."""
        return self._stem_lock(sanitize_stem(stem))

    def restore_item(self, record: ItemRecord, txid: str, files: Mapping[str, Path],
                     history: Sequence[tuple[str, Mapping[str, Path]]] = (),
                     reviews: Sequence[Mapping[str, Any]] = ()) -> None:
        """Put back an item as it was saved elsewhere (the Hub sync's restore): hard-link ``files``
        (im, gt, an, and the predicted alpha as "prediction" when there is one) as its current version
        and each ``(folder name, files)`` of ``history`` as a replaced version, then write its index
        row as ``record`` says, with ``txid``, and its ``reviews`` (as :meth:`reviews` gives them). Files
        already in place are kept, so a restore that was interrupted can run again."""
        stem = sanitize_stem(record.stem)
        check_folder_name(record.split, "split")
        check_folder_name(record.generation, "generation")
        with _os_errors(_SAVE), self._stem_lock(stem):
            targets = triple_paths(self.root, record.split, record.generation, stem)
            links = [(files[kind], targets[kind]) for kind in KINDS]
            if "prediction" in files:
                links.append((files["prediction"], self._prediction_dir / f"{stem}.{txid}.png"))
            parent = history_folder(self.root, record.split, record.generation, stem)
            for name, version in history:
                folder = parent / check_folder_name(name, "history")
                links += [(version[kind], folder / f"{kind}.png") for kind in KINDS]
            for source, target in links:
                if not target.exists():
                    make_dirs(target.parent)
                    link_or_copy(source, target)
            for folder in {target.parent for _, target in links}:
                fsync_path(folder)
            with self._index.transaction("the item was not restored") as db:
                self._index.put(db, {**asdict(record), "stem": stem, "last_txid": txid})
                self._index.put_reviews(db, stem, reviews)

    # -------------------------------------------------------------------- review
    def review(self, stem: str, reviewer: str, approved: bool, comment: str = "") -> None:
        """Approve the current version of ``stem`` or send it back with ``comment`` (which then says what to fix)."""
        stem = sanitize_stem(stem)
        if not approved and not comment.strip():
            raise ToonmatteError("Say what to fix when sending an item back; write it in the comment box.")
        with _os_errors(_SAVE), self._stem_lock(stem):
            self._index.review(stem, reviewer, approved, comment.strip())
            self._notify("record", stem)

    def reviews(self, stem: str) -> list[dict[str, Any]]:
        """Every review of ``stem``, oldest first (reviewer, verdict, comment, at, and the reviewed version's txid)."""
        return self._index.reviews(sanitize_stem(stem))

    def last_review(self, stem: str) -> tuple[str, str, str, str] | None:
        """(reviewer, "approved" or "returned", comment, UTC time) of the latest review of ``stem``, if any."""
        return self._index.last_review(sanitize_stem(stem))

    # --------------------------------------------------------------------- state
    def get_state(self, key: str, default: Any = None) -> Any:
        return self._index.get_state(key, default)

    def set_state(self, key: str, value: Any) -> None:
        self._index.set_state(key, value)

    def close(self) -> None:
        self._index.close()

    def __enter__(self) -> DatasetStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` as ``target``; on a file system without hard links, copy it (through a
    temp name, so a crash never leaves part of a file under ``target``)."""
    try:
        os.link(source, target)
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP):
            raise
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            shutil.copyfile(source, temp)
            fsync_path(temp)
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)


def uniform_alpha_warning(alpha: np.ndarray) -> str | None:
    """A sentence when a matte has one value everywhere: it was saved as asked, but such a gt usually
    means the wrong file or an unfinished correction, so the person should look."""
    if alpha.size == 0 or alpha.min() != alpha.max():
        return None
    value = int(alpha.flat[0])
    whole = ("is all background: nothing in the image is subject" if value == 0 else
             "is all subject: the whole image counts as the character" if value == 255 else
             f"has the same alpha ({value}) everywhere")
    return f"The saved matte {whole}; if that is wrong, correct it and save again."
