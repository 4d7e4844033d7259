"""Nothing lost on restart: the dataset pushed to a Hugging Face Hub dataset repo, and restored from it.

``huggingface_hub.CommitScheduler`` pushes a folder every few minutes and only ever adds files (a
pushed file that changes or disappears can leave the repo inconsistent), so the repo is made of
files that are written once::

    versions/<stem>/<txid>/{im,gt,an}.png   every saved version (and prediction.png, the model's alpha
                                            the correction started from, when there was one)
    manifest/<replica>.jsonl                one JSON entry a line, appended only: which version of each
                                            stem is current, and its index row

An entry has ``op`` ("save": a new version, with ``files``, the kinds it has, and ``replaced``, the
history folder its previous version went to; "move": the item changed split; "update": its status or
other metadata changed), ``stem``, ``at`` (UTC), ``replica`` and ``row``, the item's whole index row
after the change, ``last_txid`` included, and ``reviews``, every review of the item so far (reviewer, verdict,
comment, time, reviewed txid), once it has one. A stem's latest entry (by time) gives its row, place and
reviews; its save entries, oldest first, are its versions. The manifest is the one file that grows; each push
sends it up to its size at that moment, and its name carries this disk's replica id, so two machines
never write one file. The SQLite index is never pushed: a restore rebuilds it from the manifests.

Locally, under ``<root>/.toonmatte/hub/``: ``repo/`` is the scheduler's folder, a mirror of the repo
whose version files are hard links of the committed files (no extra space, and later saves replace
the dataset's files by rename, so a link keeps the version it was made from); ``pushed.tsv`` lists
what each successful commit sent (path and size), appended after the commit; ``replica`` is the id;
``restoring`` exists while a restore runs.

The store calls ``HubSync`` after each committed save and move, under the stem's lock, to link the
version and append its entry (under the scheduler's lock). Before each push, and when the sync starts,
every index row is compared with the manifest, so anything a listener missed (a crash between the
save and its entry, a move made by another process) is staged then. A push goes up in commits of at
most ``FILES_PER_COMMIT`` files, the manifest in the last; a commit that fails changes nothing locally
and the next push sends what did not go up yet; after a crash, what the Hub already has
(listed when the sync starts) is not sent twice.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, fields
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

from toonmatte.dataset.files import fsync_path, make_dirs, write_all, write_synced
from toonmatte.dataset.index import ItemRecord, now
from toonmatte.dataset.layout import KINDS, META_DIR, list_items
from toonmatte.dataset.store import PREDICTIONS_DIR, DatasetStore, link_or_copy
from toonmatte.errors import ToonmatteError, write_error

logger = logging.getLogger(__name__)

REPO_ENV = "TOONMATTE_HUB_DATASET"
EVERY_ENV = "TOONMATTE_HUB_EVERY"
HUB_DIR = "hub"
REPO_TYPE = "dataset"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_PREFIXES = ("versions/", "manifest/")
HISTORY_TXID = "history-"  # the made-up txid of a version the sync pushed from the history (see _stage_history)
FILES_PER_COMMIT = 100  # the Hub's recommended most per commit; a larger push goes up as several commits


def _fault_point(step: str) -> None:
    """Test seam: called with "pushed" after the Hub accepted a commit and before it is written down
    locally, so a test can kill the process in that window."""


@dataclass(frozen=True)
class SyncStatus:
    """Where the sync stands: the last push that went through, what waits, and the last failure."""

    repo_id: str
    last_push: datetime | None
    pending_versions: int
    pending_changes: int
    failure: str | None
    failed_at: datetime | None


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` if it names a Hub repo (owner/name), else a one-sentence error."""
    if not _REPO_ID.match(repo_id):
        raise ToonmatteError(f"{repo_id!r} is not a Hub dataset name; use owner/name, e.g. my-team/toon-mattes.")
    return repo_id


def hub_failure(error: BaseException, repo_id: str) -> str:
    """Why a call to the Hub failed, as a clause in words (what to do included where there is something)."""
    from huggingface_hub.errors import OfflineModeIsEnabled, RepositoryNotFoundError

    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(error, OfflineModeIsEnabled):
        return "the Hub is switched off on this machine (HF_HUB_OFFLINE is set)"
    if isinstance(error, RepositoryNotFoundError):
        return f"the dataset repo {repo_id} does not exist or the token may not see it"
    if status == 401:
        return "the Hub refused the token (HF_TOKEN is wrong or has expired)"
    if status == 403:
        return f"the token may not write to {repo_id} (give HF_TOKEN write access to it)"
    if status == 429:
        return "the Hub is limiting how often this machine may push (too many requests)"
    if isinstance(status, int):
        return f"the Hub had an error (HTTP {status})" if status >= 500 else f"the Hub refused the push (HTTP {status})"
    names = {cls.__name__ for cls in type(error).__mro__}
    if isinstance(error, (ConnectionError, TimeoutError)) or names & {"TransportError", "RequestException"}:
        return "the Hub could not be reached (no network, or the Hub is down)"
    if isinstance(error, OSError):
        return f"a file on this disk could not be read or written ({(error.strerror or str(error)).lower()})"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"something unexpected went wrong ({type(error).__name__}{': ' + text if text else ''})"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _clock(moment: datetime) -> str:
    today = datetime.now(timezone.utc).date()
    return moment.strftime("%H:%M UTC" if moment.date() == today else "%Y-%m-%d %H:%M UTC")


def _history_name(updated_at: str) -> str:
    """A history folder name (the store's format) for a version replaced at ``updated_at``."""
    return datetime.fromisoformat(updated_at).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def _append_synced(path: Path, data: bytes) -> None:
    """Append ``data`` durably; a write that fails part way (disk full) is cut off again, so the file
    never holds half a line that the next append would run into."""
    new = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            write_all(fd, data)
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)
    if new:
        fsync_path(path.parent)


def _end_line(path: Path) -> None:
    """End a file with a newline if a crash cut its last line, so the next append starts a line of its own."""
    if path.exists() and path.stat().st_size:
        with open(path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                _append_synced(path, b"\n")


def read_manifests(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Every entry of the manifests in ``folder``, per stem, oldest first (by time, then replica, then line).

    A line that is not a whole JSON entry (cut by a crash) is skipped."""
    per_stem: dict[str, list[tuple[tuple[str, str, int], dict[str, Any]]]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        for number, line in enumerate(path.read_bytes().splitlines()):
            try:
                entry = json.loads(line)
                key = (entry["at"], entry["replica"], number)
                per_stem.setdefault(entry["stem"], []).append((key, entry))
            except (ValueError, KeyError, TypeError):
                if line.strip():
                    logger.warning("Skipped a damaged line of the Hub manifest %s.", path.name)
    return {stem: [entry for _, entry in sorted(entries, key=lambda pair: pair[0])]
            for stem, entries in per_stem.items()}


def _row(record: ItemRecord, txid: str) -> dict[str, Any]:
    return {**asdict(record), "last_txid": txid}


def _batches(sizes: Mapping[str, int]) -> list[list[str]]:
    """The files of one push in commits of at most FILES_PER_COMMIT, the manifests in the last one: a
    manifest entry then only ever names version files the repo already has, whichever commit fails."""
    versions = sorted(path for path in sizes if not path.startswith("manifest/"))
    manifests = sorted(path for path in sizes if path.startswith("manifest/"))
    batches = [versions[start:start + FILES_PER_COMMIT] for start in range(0, len(versions), FILES_PER_COMMIT)]
    if batches and len(batches[-1]) + len(manifests) <= FILES_PER_COMMIT:
        batches[-1] += manifests
    elif manifests:
        batches.append(manifests)
    return batches


def _record(row: Mapping[str, Any]) -> ItemRecord | None:
    """The index row a manifest entry describes, or None when it lacks a field every manifest has (a damaged row).
    Older manifests lack the fields added since, which the record's defaults fill."""
    if any(field.default is MISSING and field.name not in row for field in fields(ItemRecord)):
        return None
    return ItemRecord(**{field.name: row[field.name] for field in fields(ItemRecord) if field.name in row})


@cache
def _scheduler_class() -> type:
    """A CommitScheduler subclass (made on first use: huggingface_hub is imported only when a sync starts)."""
    from huggingface_hub import CommitScheduler

    class Scheduler(CommitScheduler):
        """A CommitScheduler whose push is ``HubSync._push``: only what was never pushed, and the
        outcome kept for the status line instead of only logged."""

        def __init__(self, sync: HubSync, **kwargs: Any) -> None:
            self._sync = sync  # before super().__init__, whose thread pushes at once
            super().__init__(**kwargs)
            self.lock = sync.lock

        def push_to_hub(self) -> Any:
            return self._sync._push()

    return Scheduler


class HubSync:
    """Pushes a dataset store's saved versions and metadata to the Hub dataset repo ``repo_id``
    through ``api`` (an ``HfApi``, or a stand-in with the same methods), and restores from it.

    Nothing here touches the network until ``restore`` or ``start``.
    """

    def __init__(self, store: DatasetStore, repo_id: str, api: Any, *, every: float = 5.0,
                 private: bool = True) -> None:
        check_repo_id(repo_id)
        if not every > 0:
            raise ToonmatteError(f"The push interval must be a positive number of minutes, not {every!r}.")
        self.store, self.repo_id, self.api, self.every, self.private = store, repo_id, api, every, private
        self.folder = store.root / META_DIR / HUB_DIR
        self.mirror = self.folder / "repo"
        self.lock = threading.Lock()  # the scheduler's lock: every write to its folder holds it
        self._start_lock = threading.Lock()
        self._ledger = self.folder / "pushed.tsv"
        self._scheduler: Any = None
        self._retry: threading.Timer | None = None
        self._closed = False
        self._listed = False  # whether the repo's files were compared with the ledger since the start
        self._last_push: datetime | None = None
        self._failure: str | None = None
        self._failed_at: datetime | None = None
        with self._disk_errors():
            for folder in (self.mirror / "versions", self.mirror / "manifest"):
                make_dirs(folder)
            self.replica = self._replica_id()
            self._manifest = self.mirror / "manifest" / f"{self.replica}.jsonl"
            _end_line(self._manifest)
            _end_line(self._ledger)
            self._load()

    # ----------------------------------------------------------------- local state
    @staticmethod
    @contextmanager
    def _disk_errors() -> Iterator[None]:
        try:
            yield
        except OSError as error:
            raise write_error(error, "The Hub sync's folder in the dataset") from None

    def _replica_id(self) -> str:
        path = self.folder / "replica"
        if not path.exists():
            temp = path.with_name(f".replica.{uuid.uuid4().hex}.tmp")
            write_synced(temp, uuid.uuid4().hex.encode())
            os.replace(temp, path)
            fsync_path(self.folder)
        return path.read_text().strip()

    def _load(self) -> None:
        """Read what was pushed, the manifests and what waits (at start, and after a restore)."""
        self._pushed: dict[str, int] = {}
        if self._ledger.exists():
            for line in self._ledger.read_text(encoding="utf-8").splitlines():
                relative, _, size = line.rpartition("\t")
                if relative and size.isdigit():
                    self._pushed[relative] = max(int(size), self._pushed.get(relative, -1))
        self._entries = read_manifests(self.mirror / "manifest")
        self._latest = {stem: entries[-1] for stem, entries in self._entries.items()}
        self._pending: set[str] = set()
        for path in self._files():
            if path.stat().st_size > self._pushed.get(self._relative(path), -1):
                self._pending.add(self._relative(path))
        self._waiting: list[str] = []  # the op of each entry of this replica's manifest not pushed yet
        if self._manifest.exists():
            with open(self._manifest, "rb") as handle:
                handle.seek(max(self._pushed.get(self._relative(self._manifest), 0), 0))
                for entry in handle.read().splitlines():
                    try:
                        self._waiting.append(json.loads(entry)["op"])
                    except (ValueError, KeyError, TypeError):
                        pass

    def _files(self) -> Iterable[Path]:
        for prefix in _PREFIXES:
            for folder, _, names in os.walk(self.mirror / prefix):
                yield from (Path(folder) / name for name in names if not name.startswith("."))

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.mirror).as_posix()

    def _write_ledger(self, sizes: Mapping[str, int]) -> None:
        _append_synced(self._ledger, "".join(f"{path}\t{size}\n" for path, size in sizes.items()).encode())

    # ---------------------------------------------------------------------- staging
    def _on_change(self, event: str, stem: str) -> None:
        """The store's listener (under the stem's lock): stage what the save or move changed."""
        try:
            self._stage(stem)
        except Exception as error:  # the save stands; the next push's check stages it again
            self._fail(error, staging=True)

    def _stage(self, stem: str) -> bool:
        """Under the stem's lock: link the current version of ``stem`` and append its entry, if the
        manifest does not already say exactly what the index says. True if something was staged."""
        record, txid = self.store.get(stem), self.store.committed_txid(stem)
        if record is None or txid is None:  # queued, never saved: not part of the dataset yet
            return False
        row, reviews = _row(record, txid), self.store.reviews(stem)
        with self.lock:
            latest = self._latest.get(stem)
            if latest is not None and latest["row"] == row and latest.get("reviews", []) == reviews:
                return False
            entry: dict[str, Any] = {"replica": self.replica, "stem": stem, "row": row}
            if reviews:  # all of them, so the latest entry alone gives them
                entry["reviews"] = reviews
            if latest is None or latest["row"]["last_txid"] != txid:
                history = self.store.history(stem) if record.versions > 1 else []
                replaced = history[-1].name if history else None
                if latest is None:  # versions it replaced before the sync knew the item go up first
                    replaced = self._stage_history(stem, row, history)
                entry.update(op="save", files=self._link_version(stem, txid), replaced=replaced)
            else:
                entry["op"] = "move" if latest["row"]["split"] != row["split"] else "update"
            self._append_entry({"at": now(), **entry})
            self._waiting.append(entry["op"])
        return True

    def _stage_history(self, stem: str, row: dict[str, Any], history: list[Path]) -> str | None:
        """Under the lock: a save entry for each replaced version of ``stem`` (oldest first) that no entry
        has yet, as when the sync starts on a dataset that has history, so a restore brings it back too.
        Each gets a made-up txid naming its history folder; the restore needs only their order and files.
        A folder missing one of the triple's files is left out. Returns the last folder staged."""
        replaced = None
        for folder in history:
            sources = {kind: folder / f"{kind}.png" for kind in KINDS}
            if not all(path.is_file() for path in sources.values()):
                logger.warning("The replaced version %s of %s is incomplete, so it is not pushed.", folder.name, stem)
                continue
            txid = f"{HISTORY_TXID}{folder.name}"
            self._append_entry({"at": now(), "replica": self.replica, "stem": stem, "op": "save",
                                "row": {**row, "last_txid": txid}, "files": self._link_version(stem, txid, sources),
                                "replaced": replaced})
            replaced = folder.name
        return replaced

    def _append_entry(self, entry: dict[str, Any]) -> None:
        """Under the lock: append ``entry`` to this replica's manifest and make it the stem's latest."""
        _append_synced(self._manifest, (json.dumps(entry, sort_keys=True) + "\n").encode())
        self._entries.setdefault(entry["stem"], []).append(entry)
        self._latest[entry["stem"]] = entry
        self._pending.add(self._relative(self._manifest))

    def _link_version(self, stem: str, txid: str, sources: Mapping[str, Path] | None = None) -> list[str]:
        """Hard-link the current files of ``stem`` (written by ``txid``), or ``sources`` (kind: file), into
        the mirror; the kinds linked."""
        folder = self.mirror / "versions" / stem / txid
        make_dirs(folder)
        if sources is None:
            sources = dict(self.store.triple_paths(stem))
            prediction = self.store.root / META_DIR / PREDICTIONS_DIR / f"{stem}.{txid}.png"
            if prediction.exists():
                sources["prediction"] = prediction
        for kind, source in sources.items():
            target = folder / f"{kind}.png"
            if not target.exists():
                link_or_copy(source, target)
            if self._relative(target) not in self._pushed:
                self._pending.add(self._relative(target))
        fsync_path(folder)
        return list(sources)

    def reconcile(self) -> int:
        """Stage every saved item whose index row the manifest does not match yet; how many were staged."""
        staged = 0
        for record in self.store.items():
            if not record.versions:
                continue
            latest = self._latest.get(record.stem)
            if (latest is not None and _row(record, latest["row"]["last_txid"]) == latest["row"]
                    and latest.get("reviews", []) == self.store.reviews(record.stem)):
                continue  # versions and updated_at change with every save, so the txid matches too
            with self.store.locked(record.stem):
                staged += self._stage(record.stem)
        return staged

    # ---------------------------------------------------------------------- pushing
    def _push(self) -> Any:
        """One push (on the scheduler's thread): what waits, in one commit; the outcome is kept for
        ``status`` (never raised: the scheduler would only log it)."""
        try:
            return self._push_once()
        except Exception as error:
            self._fail(error)
            return None

    def _push_once(self) -> Any:
        from huggingface_hub import CommitOperationAdd

        staging_error = None
        try:
            self.reconcile()
        except Exception as error:  # push what is staged all the same; the next push checks again
            staging_error = error
        with self.lock:
            sizes = {}
            for path in sorted(self._pending):
                try:
                    sizes[path] = (self.mirror / path).stat().st_size
                except FileNotFoundError:  # removed by hand: nothing to send
                    self._pending.discard(path)
            manifests = {path: (self.mirror / path).read_bytes()[:size] for path, size in sizes.items()
                         if path.startswith("manifest/")}
            waiting = len(self._waiting)
        if not sizes:
            if staging_error is not None:
                self._fail(staging_error, staging=True)
            return None
        batches = _batches(sizes)
        info = None
        for number, batch in enumerate(batches, 1):
            operations = [CommitOperationAdd(path_in_repo=path,
                                             path_or_fileobj=manifests.get(path, str(self.mirror / path)))
                          for path in batch]
            saves = sum(path.endswith("/im.png") for path in batch)
            part = f" (commit {number} of {len(batches)})" if len(batches) > 1 else ""
            try:
                info = self.api.create_commit(repo_id=self.repo_id, repo_type=REPO_TYPE, operations=operations,
                                              commit_message=f"toonmatte: {_plural(saves, 'saved version')} "
                                                             f"from replica {self.replica[:8]}{part}")
            except Exception as error:  # what earlier commits sent is written down; the next push sends the rest
                self._fail(error)
                return None
            _fault_point("pushed")
            with self.lock:
                sent = {path: sizes[path] for path in batch}
                self._write_ledger(sent)
                for path, size in sent.items():
                    self._pushed[path] = size
                    if (self.mirror / path).stat().st_size == size:
                        self._pending.discard(path)
        with self.lock:
            del self._waiting[:waiting]
            self._last_push = datetime.now(timezone.utc)
            recovered, self._failure, self._failed_at = self._failure, None, None
        logger.info("Pushed %s to %s.", _plural(len(sizes), "file"), self.repo_id)
        if recovered:
            logger.info("Pushing to %s works again.", self.repo_id)
        if staging_error is not None:
            self._fail(staging_error, staging=True)
        return info

    def _fail(self, error: BaseException, staging: bool = False) -> None:
        """Keep (and log) why pushing does not work; ``staging``: a save could not be prepared for it."""
        if staging:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            cause = f"a save could not be prepared for it on this disk ({reason.lower()})"
        else:
            cause = hub_failure(error, self.repo_id)
        with self.lock:
            self._failure, self._failed_at = cause, datetime.now(timezone.utc)
        logger.warning(self.status_line())

    def _remote_files(self) -> dict[str, int]:
        """The repo's version and manifest files with their sizes."""
        return {entry.path: entry.size
                for entry in self.api.list_repo_tree(self.repo_id, repo_type=REPO_TYPE, recursive=True)
                if getattr(entry, "size", None) is not None and entry.path.startswith(_PREFIXES)}

    def _adopt_remote(self, remote: Mapping[str, int]) -> None:
        """Write down as pushed what the repo already has of the mirror (a crash can come between a
        commit and the ledger line), so nothing is sent twice."""
        with self.lock:
            found = {path: size for path, size in remote.items()
                     if size > self._pushed.get(path, -1) and (self.mirror / path).is_file()
                     and (self.mirror / path).stat().st_size >= size}
            if found:
                self._write_ledger(found)
        self._listed = True
        self._load_locked()

    def _load_locked(self) -> None:
        with self.lock, self._disk_errors():
            self._load()

    # ------------------------------------------------------------------ lifecycle
    def restore(self) -> int:
        """Fill an empty dataset root from the repo (or finish a restore that was interrupted): the
        current versions become the triples, older ones the history, the index rows come from the
        manifest. Returns the number of items restored (0 when the root was not empty)."""
        marker = self.folder / "restoring"
        if not marker.exists() and not self._root_is_empty():
            return 0
        with self._disk_errors():
            if not marker.exists():
                write_synced(marker, b"")
                fsync_path(self.folder)
        try:
            self.api.create_repo(self.repo_id, repo_type=REPO_TYPE, private=self.private, exist_ok=True)
            remote = self._remote_files()
            if any(path.startswith("manifest/") for path in remote):
                logger.info("Restoring the dataset from %s...", self.repo_id)
                self.api.snapshot_download(repo_id=self.repo_id, repo_type=REPO_TYPE, local_dir=str(self.mirror),
                                           allow_patterns=[f"{prefix}*" for prefix in _PREFIXES])
        except Exception as error:
            raise ToonmatteError(f"The dataset could not be restored from the Hub ({self.repo_id}) because "
                                 f"{hub_failure(error, self.repo_id)}; the studio did not start, so that nothing "
                                 "is saved over it: fix this and start it again.") from None
        self._adopt_remote(remote)
        count = sum(self._restore_item(stem, entries) for stem, entries in sorted(self._entries.items()))
        with self._disk_errors():
            shutil.rmtree(self.mirror / ".cache", ignore_errors=True)  # snapshot_download's bookkeeping
            marker.unlink()
            fsync_path(self.folder)
        if count:
            logger.info("Restored %s from %s.", _plural(count, "item"), self.repo_id)
        return count

    def _root_is_empty(self) -> bool:
        return not any(record.versions for record in self.store.items()) and not list_items(self.store.root)

    def _restore_item(self, stem: str, entries: list[dict[str, Any]]) -> int:
        row = entries[-1]["row"]
        record = _record(row)
        if record is None or "last_txid" not in row:
            logger.warning("The Hub manifest's entry for %s is damaged (fields are missing), so it was not restored.",
                           stem)
            return 0
        saves = [entry for entry in entries if entry["op"] == "save"]
        current = next((i for i in range(len(saves) - 1, -1, -1)
                        if saves[i]["row"].get("last_txid") == row["last_txid"]), None)
        if current is None or (files := self._version_files(stem, saves[current])) is None:
            logger.warning("The Hub has no complete files for the current version of %s, so it was not restored.", stem)
            return 0
        history = []
        for older, newer in zip(saves[:current], saves[1:current + 1]):
            version = self._version_files(stem, older)
            if version is not None:
                history.append((newer.get("replaced") or _history_name(newer["row"]["updated_at"]), version))
        self.store.restore_item(record, row["last_txid"], files, history, entries[-1].get("reviews", ()))
        return 1

    def _version_files(self, stem: str, entry: Mapping[str, Any]) -> dict[str, Path] | None:
        if "last_txid" not in entry["row"]:
            return None
        folder = self.mirror / "versions" / stem / entry["row"]["last_txid"]
        files = {kind: folder / f"{kind}.png" for kind in entry.get("files", KINDS)}
        return files if all(path.is_file() for path in files.values()) and set(KINDS) <= set(files) else None

    def start(self) -> None:
        """Stage what is not staged yet, listen to the store, and start pushing every ``every`` minutes."""
        self.store.add_listener(self._on_change)
        if not self._listed:
            try:
                self._adopt_remote(self._remote_files())
            except Exception as error:  # the ledger alone decides; at worst a file goes up twice
                logger.info("Could not list %s on the Hub (%s).", self.repo_id, hub_failure(error, self.repo_id))
        try:
            self.reconcile()
        except Exception as error:  # the studio starts all the same; each push tries again
            self._fail(error, staging=True)
        try:
            self.api.auth_check(self.repo_id, repo_type=REPO_TYPE, write=True)
        except Exception as error:  # a missing repo is created by the scheduler; no network shows at the push
            if getattr(getattr(error, "response", None), "status_code", None) in (401, 403):
                self._fail(error)
        self._start_scheduler()

    def _start_scheduler(self) -> None:
        with self._start_lock:
            if self._scheduler is not None or self._closed:
                return
            if self._retry is not None:
                self._retry.cancel()
            try:
                self._scheduler = _scheduler_class()(
                    self, repo_id=self.repo_id, folder_path=self.mirror, every=self.every, repo_type=REPO_TYPE,
                    private=self.private, hf_api=self.api)
            except Exception as error:  # the repo could not be created or found: try again later
                self._fail(error)
                self._retry = threading.Timer(self.every * 60, self._start_scheduler)
                self._retry.daemon = True
                self._retry.start()

    def push_now(self, timeout: float | None = None) -> None:
        """Push what waits now and wait for the outcome (it lands in ``status``, never raised)."""
        self._start_scheduler()
        if self._scheduler is not None:
            self._scheduler.trigger().result(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Push what waits (waiting at most ``timeout`` seconds) and stop pushing."""
        with self._start_lock:
            self._closed = True
            if self._retry is not None:
                self._retry.cancel()
        if self._scheduler is None:
            return
        try:
            self._scheduler.trigger().result(timeout)
        except TimeoutError:
            logger.warning("The last push to %s did not finish in %.0f s; what it held is pushed at the next start.",
                           self.repo_id, timeout)
        self._scheduler.stop()

    # --------------------------------------------------------------------- status
    def status(self) -> SyncStatus:
        with self.lock:
            saves = sum(op == "save" for op in self._waiting)
            return SyncStatus(self.repo_id, self._last_push, saves, len(self._waiting) - saves, self._failure,
                              self._failed_at)

    def status_line(self) -> str:
        """The sync's state in one sentence, for the studio and the log."""
        status = self.status()
        waiting = [_plural(status.pending_versions, "save")] if status.pending_versions else []
        if status.pending_changes:
            waiting.append(_plural(status.pending_changes, "change") + " of split or status")
        what = " and ".join(waiting)
        verb = "waits" if status.pending_versions + status.pending_changes == 1 else "wait"
        if status.failure is not None:
            assert status.failed_at is not None  # set together with the failure
            tail = (f"{what} {verb} on this disk until a push goes through" if waiting
                    else "nothing is waiting to be pushed")
            return f"Pushing to {self.repo_id} failed at {_clock(status.failed_at)}: {status.failure}; {tail}."
        last = f"last push at {_clock(status.last_push)}" if status.last_push else "no push yet since the start"
        if waiting:
            return f"{what.capitalize()} {verb} for the next push to {self.repo_id} (every {self.every:g} min; {last})."
        return f"Everything is on the Hub in {self.repo_id} ({last})."


def default_dataset_root(environ: Mapping[str, str] = os.environ, persistent: Path = Path("/data")) -> Path:
    """The studio's dataset folder when none is given: ``$TOONMATTE_DATASET``; on a Space with
    persistent storage (``/data``, kept across restarts) ``/data/dataset``; else ``./dataset``."""
    if environ.get("TOONMATTE_DATASET"):
        return Path(environ["TOONMATTE_DATASET"])
    if environ.get("SPACE_ID") and persistent.is_dir() and os.access(persistent, os.W_OK):
        return persistent / "dataset"
    return Path("dataset")


def start_hub_sync(store: DatasetStore, environ: Mapping[str, str] = os.environ,
                   api: Any = None) -> HubSync | None:
    """The sync the environment asks for, restored and started; None when ``$TOONMATTE_HUB_DATASET``
    is unset (the default) or no token is available (said in the log).

    The token is ``$HF_TOKEN`` (or the machine's saved login); ``$TOONMATTE_HUB_EVERY`` is the push
    interval in minutes (default 5). Raises ``ToonmatteError`` when an empty dataset cannot be
    restored, so a studio never starts empty over a dataset that exists on the Hub."""
    repo_id = environ.get(REPO_ENV, "").strip()
    if not repo_id:
        return None
    try:
        every = float(environ.get(EVERY_ENV) or 5)
    except ValueError:
        raise ToonmatteError(f"${EVERY_ENV} must be a number of minutes, not {environ[EVERY_ENV]!r}.") from None
    if api is None:
        from huggingface_hub import HfApi, get_token

        token = environ.get("HF_TOKEN") or get_token()
        if not token:
            logger.warning("%s is set to %s but there is no Hugging Face token: set HF_TOKEN (a Space secret) to a "
                           "token that may write to it; until then saves stay on this disk only, and a Space loses "
                           "them when it restarts.", REPO_ENV, repo_id)
            return None
        api = HfApi(token=token)
    sync = HubSync(store, repo_id, api, every=every)
    sync.restore()
    sync.start()
    logger.info(sync.status_line())
    return sync
