"""The studio's work queue: images to correct, one at a time, with prediction one step ahead.

Sources are a server folder, uploaded images, or uploaded zips; uploads are copied (zips
extracted safely) into a work folder so the queue survives a restart. The queue's items and
cursor live in the dataset store's state, so the studio resumes where it left off. While the
person edits item k, item k+1 is predicted on a background thread, so "next" is instant.
"""
from __future__ import annotations

import contextvars
import errno
import logging
import os
import re
import shutil
import stat
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from toonmatte.dataset import DatasetStore, hash_file, sanitize_stem
from toonmatte.errors import ToonmatteError, write_error
from toonmatte.evaluation.uncertainty import Uncertainty
from toonmatte.imaging.imageio import IMAGE_EXTENSIONS, collect_inputs

log = logging.getLogger(__name__)

STATE_KEY = "queue"
"""Key of the queue's items and cursor in the store's state."""
DONE = ("corrected", "reviewed")
"""Statuses that count as corrected in the progress line."""
MAX_ZIP_MEMBERS = 20_000
"""Most members one zip may hold, against zip bombs of many tiny files."""
_UPLOAD_FOLDER = re.compile(r"^[0-9a-f]{16}$")
"""An upload's folder: the first 16 hex digits of its content hash (see ``import_uploads``)."""
_CHUNK = 1 << 20


@dataclass(frozen=True)
class QueueItem:
    """One image in the queue: the dataset ``stem`` it is saved under, its source file and that file's
    sha256 (``source_hash``), taken once when the image was queued and passed along to the prediction
    and the save; None only in a queue saved before hashes were kept there."""

    stem: str
    path: Path
    source_hash: str | None = None

    def digest(self) -> str:
        """The source file's sha256: the one taken when it was queued, else computed now."""
        return self.source_hash or hash_file(self.path)


@dataclass(frozen=True)
class Prediction:
    """What the engine made of a queue item: the RGB ``image`` and its predicted ``alpha``."""

    stem: str
    path: Path
    image: np.ndarray
    alpha: np.ndarray
    engine: str
    version: str
    source_hash: str
    uncertainty: Uncertainty | None = None
    stored: str | None = None
    """When the alpha came from a pre-annotation (``predict --for-studio``): when it was made."""


@dataclass
class ImportResult:
    """Image files gathered from uploads, and one sentence per thing that was left out; ``hashes`` has
    the sha256 of the files already hashed on the way (an uploaded image is, to name its folder), so
    that ``register`` does not read them again."""

    paths: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    hashes: dict[Path, str] = field(default_factory=dict)


@dataclass
class Budget:
    """How much one person's uploads folder may still take: bytes and files. Extraction counts the
    bytes actually inflated (not the sizes a zip claims), so a zip bomb stops at the budget."""

    bytes: int
    files: int

    @classmethod
    def left_in(cls, folder: Path, max_bytes: int, max_files: int) -> Budget:
        """The part of (``max_bytes``, ``max_files``) that ``folder`` does not use yet."""
        used_bytes = used_files = 0
        if folder.is_dir():
            for path in folder.rglob("*"):
                if path.is_file():
                    used_bytes += path.stat().st_size
                    used_files += 1
        return cls(max_bytes - used_bytes, max_files - used_files)

    def refusal(self, label: str) -> str:
        return (f"{label} would go over your uploads limit, so it was not loaded (or only in part); "
                "finish or skip the images already queued, or ask the studio's owner for more room.")


def _is_image_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS


def _safe_member_path(name: str) -> PurePosixPath | None:
    """The relative path a zip member may be extracted to, or None for an unsafe name.

    Absolute names, drive letters, backslash tricks and any ``..`` component are unsafe.
    """
    normalized = name.replace("\\", "/")
    if not normalized or normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        return None
    parts = [part for part in normalized.split("/") if part not in ("", ".")]
    if not parts or any(part == ".." for part in parts):
        return None
    return PurePosixPath(*parts)


def extract_zip(archive: str | Path, destination: str | Path, budget: Budget) -> ImportResult:
    """Extract the image files of a zip into ``destination``; nothing is written outside it.

    Members with unsafe names (absolute, ``..``), symbolic links, hidden files and non-images
    are left out and reported; extraction stops at the ``budget`` (spent as it goes) and at
    ``MAX_ZIP_MEMBERS`` members, against zip bombs.
    """
    destination = Path(destination)
    result = ImportResult()
    label = Path(archive).name
    try:
        bundle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        result.skipped.append(f"{label} is not a readable zip file ({error}); "
                              "re-create the archive and upload it again.")
        return result
    root = destination.resolve()
    with bundle:
        members = [info for info in bundle.infolist() if not info.is_dir()]
        if len(members) > MAX_ZIP_MEMBERS:
            result.skipped.append(f"{label} holds {len(members)} files, more than {MAX_ZIP_MEMBERS}; "
                                  "split it into smaller zips.")
            return result
        for info in members:
            relative = _safe_member_path(info.filename)
            mode = info.external_attr >> 16
            if relative is None:
                result.skipped.append(f"{label}: {_short(info.filename)!r} has an unsafe path and was not extracted.")
                continue
            if stat.S_ISLNK(mode):
                result.skipped.append(f"{label}: {_short(info.filename)!r} is a symbolic link and was not extracted.")
                continue
            if any(part.startswith(".") for part in relative.parts) or not _is_image_name(relative.name):
                continue  # hidden files (__MACOSX resource forks too) and non-images are simply not part of the queue
            target = (root / relative).resolve()
            if not target.is_relative_to(root):
                result.skipped.append(f"{label}: {_short(info.filename)!r} would land outside the work "
                                      "folder and was not extracted.")
                continue
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(info) as source, open(target, "wb") as sink:
                    for chunk in iter(lambda: source.read(_CHUNK), b""):
                        budget.bytes -= len(chunk)
                        if budget.bytes < 0 or budget.files < 1:
                            raise ToonmatteError(budget.refusal(label))
                        sink.write(chunk)
                budget.files -= 1
            except ToonmatteError as error:
                _remove(target)
                result.skipped.append(str(error))
                return result
            except (zipfile.BadZipFile, EOFError) as error:
                _remove(target)
                result.skipped.append(f"{label}: {_short(info.filename)!r} could not be extracted ({error}).")
                continue
            except OSError as error:
                _remove(target)
                if error.errno != errno.ENAMETOOLONG:  # the work folder itself failed: stop here, keep what came out
                    result.skipped.append(str(write_error(error, f"The images of {label}")))
                    break
                result.skipped.append(f"{label}: {_short(info.filename)!r} has a name too long for the file system "
                                      "and was not extracted; shorten it.")
                continue
            result.paths.append(target)
    result.paths.sort()
    return result


def _short(name: str, limit: int = 60) -> str:
    """A member name short enough for a message."""
    return name if len(name) <= limit else name[:limit - 1] + "…"


def _remove(path: Path) -> None:
    """Delete a partly extracted file, if it got that far (never raises: another error is being reported)."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def import_uploads(files: Iterable[str | Path], work_dir: str | Path, budget: Budget) -> ImportResult:
    """Copy uploaded images (and the images inside uploaded zips) into ``work_dir``, within ``budget``.

    Each upload goes to a subfolder named after its content hash, so re-uploading the same file
    reuses it and two different files with one name never collide.
    """
    work_dir = Path(work_dir)
    result = ImportResult()
    for upload in files:
        path = Path(upload)
        if not path.is_file():
            result.skipped.append(f"{path.name} was not received; upload it again.")
            continue
        digest = hash_file(path)
        folder = work_dir / digest[:16]
        if path.suffix.lower() == ".zip" or (not _is_image_name(path.name) and zipfile.is_zipfile(path)):
            extracted = extract_zip(path, folder, budget)
            result.paths.extend(extracted.paths)
            result.skipped.extend(extracted.skipped)
            if not extracted.paths and not extracted.skipped:
                result.skipped.append(f"{path.name} contains no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}).")
        elif _is_image_name(path.name):
            target = folder / (sanitize_stem(path.stem) + path.suffix.lower())
            partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")  # a failed copy is never reused
            if not target.exists():
                size = path.stat().st_size
                if size > budget.bytes or budget.files < 1:
                    result.skipped.append(budget.refusal(path.name))
                    continue
                budget.bytes, budget.files = budget.bytes - size, budget.files - 1
            try:
                folder.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    shutil.copyfile(path, partial)
                    os.replace(partial, target)
            except OSError as error:
                _remove(partial)
                result.skipped.append(str(write_error(error, f"The upload {path.name}")))
                continue
            result.paths.append(target)
            result.hashes[target] = digest  # the copy has the upload's bytes
        else:
            result.skipped.append(f"{path.name} is neither an image ({', '.join(sorted(IMAGE_EXTENSIONS))}) "
                                  "nor a zip; it was left out.")
    return result


def prune_uploads(work_dir: Path, keep: Iterable[Path], max_age: float) -> int:
    """Delete the upload folders in ``work_dir`` untouched for ``max_age`` seconds that hold none of
    ``keep`` (the images still queued); returns how many went. Saved images live on in the dataset."""
    if not work_dir.is_dir():
        return 0
    cutoff = time.time() - max_age
    kept = {Path(path).resolve() for path in keep}
    removed = 0
    for folder in work_dir.iterdir():
        if not _UPLOAD_FOLDER.match(folder.name):  # only upload folders (another person's folder is not one)
            continue
        try:
            stale = folder.is_dir() and folder.stat().st_mtime < cutoff
        except OSError:
            continue
        if stale and not any(path.is_relative_to(folder.resolve()) for path in kept):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def folder_images(folder: str | Path) -> ImportResult:
    """The image files in a server folder (subfolders included), sorted by path."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        return ImportResult(skipped=[f"{path} is not a folder on the server; check the path."])
    paths = [p for p in collect_inputs([str(path)], recursive=True) if p.is_file()]
    if not paths:
        return ImportResult(skipped=[f"{path} contains no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})."])
    return ImportResult(paths=paths)


def register(store: DatasetStore, paths: Iterable[Path], hashes: Mapping[Path, str] | None = None) -> list[QueueItem]:
    """Queue items for ``paths``, each indexed in the store (new ones as "todo").

    A source already in the store (same bytes) keeps its stem, so its saved work shows up; another
    file with a taken name gets a suffixed stem (``store.stem_for``); identical files are queued once.
    ``hashes`` gives the sha256 of paths already hashed; the others are hashed here, once.
    """
    items: list[QueueItem] = []
    seen: set[str] = set()
    for path in paths:
        digest = (hashes or {}).get(Path(path)) or hash_file(path)
        with store.naming():
            stem = store.stem_for(path.name, digest)
            if stem in seen:
                continue
            seen.add(stem)
            if store.get(stem) is None:
                store.record(stem, status="todo", source_path=str(path), source_hash=digest)
        items.append(QueueItem(stem, Path(path), digest))
    return items


Predictor = Callable[[QueueItem], Prediction]


class WorkQueue:
    """Items to correct and a cursor, persisted in the store, with one-ahead background prediction.

    ``predictor`` turns an item into a :class:`Prediction` and raises ``BadImageError`` for an
    unreadable file; every prediction runs on one background thread (so predictions never overlap),
    and ``current`` waits for its item's. All methods are thread-safe.
    """

    def __init__(self, store: DatasetStore, predictor: Predictor, items: list[QueueItem],
                 index: int = 0, source: str = "", state_key: str = STATE_KEY, loaded: list[str] | None = None) -> None:
        if not items:
            raise ToonmatteError("The queue is empty; load a folder, images or a zip with at least one image.")
        self.store = store
        self.predictor = predictor
        self.items = items
        self.source = source
        self.state_key = state_key
        self.loaded = loaded or [item.stem for item in items]
        """The stems in the order they were loaded ("upload order", whatever ``reorder`` did since)."""
        self._index = min(max(index, 0), len(items) - 1)
        self._lock = threading.RLock()
        self._futures: dict[int, Future] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="toonmatte-prefetch")

    @classmethod
    def from_paths(cls, store: DatasetStore, predictor: Predictor, paths: Iterable[Path], source: str = "",
                   state_key: str = STATE_KEY, hashes: Mapping[Path, str] | None = None) -> WorkQueue:
        """A new queue over ``paths`` (see ``register``, which takes ``hashes``), saved in the store's state
        under ``state_key``."""
        queue = cls(store, predictor, register(store, paths, hashes), 0, source, state_key)
        queue.save_state()
        return queue

    @classmethod
    def resume(cls, store: DatasetStore, predictor: Predictor, state_key: str = STATE_KEY) -> WorkQueue | None:
        """The queue saved in the store's state under ``state_key``, at its saved cursor; None when there is none."""
        state = store.get_state(state_key)
        if not state or not state.get("items"):
            return None
        items = [QueueItem(entry[0], Path(entry[1]), entry[2] if len(entry) > 2 else None) for entry in state["items"]]
        return cls(store, predictor, items, int(state.get("index", 0)), str(state.get("source", "")), state_key,
                   state.get("loaded"))

    def save_state(self) -> None:
        with self._lock:
            state = {"source": self.source, "index": self._index, "loaded": self.loaded,
                     "items": [[item.stem, str(item.path), item.source_hash] for item in self.items]}
        self.store.set_state(self.state_key, state)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def index(self) -> int:
        return self._index

    @property
    def item(self) -> QueueItem:
        return self.items[self._index]

    def _future(self, index: int) -> Future:
        """The (possibly running or finished) prediction of item ``index``."""
        future = self._futures.get(index)
        if future is None:
            # In a copy of the caller's context: on ZeroGPU, spaces reads the request there and books
            # the GPU time of a prefetch to the person who asked for it (see annotate.zerogpu).
            future = self._executor.submit(contextvars.copy_context().run, self.predictor, self.items[index])
            self._futures[index] = future
        return future

    def _prefetch(self) -> None:
        """Keep predictions for the cursor's neighbours only, and start the next one."""
        with self._lock:
            keep = {self._index - 1, self._index, self._index + 1}
            for index in [i for i in self._futures if i not in keep]:
                self._futures.pop(index).cancel()
            if self._index + 1 < len(self.items):
                self._future(self._index + 1)

    def current(self) -> Prediction:
        """The prediction of the item under the cursor (waits if it is still running); starts the next.

        Raises whatever the predictor raised for this item (``BadImageError`` for a bad file);
        the queue stays usable, so the caller can skip it.
        """
        with self._lock:
            index = self._index
            future = self._future(index)
        self._prefetch()
        try:
            prediction = future.result()
        except BaseException:
            with self._lock:
                if self._futures.get(index) is future:
                    del self._futures[index]  # a later attempt retries rather than replaying the error
            raise
        record = self.store.get(prediction.stem)
        if record is None or record.status == "todo":
            self.store.record(prediction.stem, status="predicted", source_path=str(prediction.path),
                              source_hash=prediction.source_hash, model=prediction.engine,
                              model_version=prediction.version)
        return prediction

    def is_prefetched(self, index: int) -> bool:
        """Whether item ``index``'s prediction has finished (successfully or not)."""
        with self._lock:
            future = self._futures.get(index)
        return future is not None and future.done()

    def wait_prefetch(self, timeout: float | None = None) -> None:
        """Block until the background prediction of the next item (if any) has finished."""
        with self._lock:
            future = self._futures.get(self._index + 1)
        if future is not None:
            try:
                future.exception(timeout=timeout)
            except Exception:  # noqa: BLE001 - a cancelled future is finished too
                pass

    def known(self, index: int) -> Prediction | None:
        """Item ``index``'s prediction if it is already made (None while running, never started, or failed)."""
        with self._lock:
            future = self._futures.get(index)
        if future is None or not future.done() or future.exception() is not None:
            return None
        return future.result()

    def reorder(self, order: list[int]) -> None:
        """Keep the items at indices ``order``, in that order (predictions made stay with their items);
        the cursor stays on its item, or goes to the first when that item was left out."""
        with self._lock:
            current = self.items[self._index]
            self.items = [self.items[index] for index in order]
            self._futures = {new: self._futures[old] for new, old in enumerate(order) if old in self._futures}
            self._index = next((i for i, item in enumerate(self.items) if item is current), 0)
        self.save_state()
        self._prefetch()

    def go(self, index: int) -> QueueItem:
        """Move the cursor to ``index`` (clamped to the queue) and save it."""
        with self._lock:
            self._index = min(max(index, 0), len(self.items) - 1)
            item = self.items[self._index]
        self.save_state()
        self._prefetch()
        return item

    def next(self) -> QueueItem:
        return self.go(self._index + 1)

    def previous(self) -> QueueItem:
        return self.go(self._index - 1)

    def skip(self) -> QueueItem:
        """Mark the current item skipped (unless it was already corrected) and move on."""
        stem = self.item.stem
        record = self.store.get(stem)
        if record is None or record.status not in DONE:
            self.store.record(stem, status="skipped", source_path=str(self.item.path))
        return self.next()

    def locate(self, stem: str) -> int | None:
        """The index of the item saved under ``stem``, or None."""
        return next((i for i, item in enumerate(self.items) if item.stem == stem), None)

    def at_end(self) -> bool:
        return self._index == len(self.items) - 1

    def progress(self) -> tuple[int, int]:
        """(items corrected or reviewed, items in the queue)."""
        statuses = {record.stem: record.status for record in self.store.items()}
        done = sum(1 for item in self.items if statuses.get(item.stem) in DONE)
        return done, len(self.items)

    def describe(self) -> str:
        """One line for the UI: position, stem and corrected count."""
        done, total = self.progress()
        return f"Image {self._index + 1} of {total}: **{self.item.stem}** · {done} of {total} corrected"

    def close(self) -> None:
        """Stop the background thread (pending predictions are dropped)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def skip_unreadable(queue: WorkQueue, errors: type[BaseException] | tuple[type[BaseException], ...]
                    ) -> tuple[Prediction | None, list[str]]:
    """The current prediction, skipping forward over items whose prediction raises ``errors``.

    Returns the first readable prediction (None when none is left from the cursor on) and one
    message per skipped item, so the UI can warn about each bad file and stay usable.
    """
    messages: list[str] = []
    while True:
        try:
            return queue.current(), messages
        except errors as error:
            messages.append(str(error))
            stem = queue.item.stem
            queue.store.record(stem, status="skipped", source_path=str(queue.item.path))
            if queue.at_end():
                return None, messages
            queue.next()

