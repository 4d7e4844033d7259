"""A stand-in for ``huggingface_hub.HfApi`` that records what would be committed, for the Hub sync and
publishing tests; nothing reaches the network.

With ``folder``, the repo and the commit log live on disk, so a second process (a restart) sees what
the first one pushed. ``fail(method, error)`` makes the next call of ``method`` raise ``error`` (``after=n``:
the call after the next n);
``pause`` makes ``create_commit`` touch that file and hang before committing anything (to be killed).
"""
from __future__ import annotations

import fnmatch
import importlib
import json
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO_ID = "team/mattes"


def http_error(status: int) -> Exception:
    """The error huggingface_hub raises for an HTTP ``status`` from the Hub."""
    from huggingface_hub import errors

    http = importlib.import_module(errors.Response.__module__.split(".")[0])
    request = http.Request("POST", f"https://huggingface.co/api/datasets/{REPO_ID}/commit/main")
    return errors.HfHubHTTPError(f"{status} Client Error", response=http.Response(status, request=request))


def network_error() -> Exception:
    """What the Hub client raises when there is no network."""
    from huggingface_hub import errors

    http = importlib.import_module(errors.Response.__module__.split(".")[0])
    return http.ConnectError("[Errno 101] Network is unreachable")


def _apply(files: dict[str, bytes], added: dict[str, bytes], deleted: list[str]) -> None:
    """A commit's effect on a repo's files: ``deleted`` paths (files or folders) go, ``added`` ones are written."""
    for path in deleted:
        for name in [name for name in files if name == path or name.startswith(path.rstrip("/") + "/")]:
            del files[name]
    files.update(added)


class FakeHub:
    def __init__(self, folder: Path | None = None, pause: Path | None = None) -> None:
        self.folder, self.pause = folder, pause
        self.files: dict[str, bytes] = {}
        self.commits: list[dict[str, Any]] = []
        self.repos: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, list[BaseException | None]] = {}  # None: that call goes through
        self.pulls: dict[int, dict[str, Any]] = {}  # pull request number: files, commits, status
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        if folder is not None and (folder / "commits.jsonl").exists():
            self.commits = [json.loads(line) for line in (folder / "commits.jsonl").read_text().splitlines()]
            for path in (folder / "repo").rglob("*"):
                if path.is_file():
                    self.files[path.relative_to(folder / "repo").as_posix()] = path.read_bytes()

    def fail(self, method: str, error: BaseException, times: int = 1, after: int = 0) -> None:
        self.failures.setdefault(method, []).extend([None] * after + [error] * times)

    def _maybe_fail(self, method: str) -> None:
        pending = self.failures.get(method)
        if pending:
            error = pending.pop(0)
            if error is not None:
                raise error

    # ------------------------------------------------------------------ HfApi
    def create_repo(self, repo_id: str, *, private: bool | None = None, repo_type: str | None = None,
                    exist_ok: bool = False, **_: Any) -> SimpleNamespace:
        self._maybe_fail("create_repo")
        self.repos.setdefault(repo_id, {"private": private, "repo_type": repo_type})
        return SimpleNamespace(repo_id=repo_id)

    def auth_check(self, repo_id: str, *, repo_type: str | None = None, write: bool = False, **_: Any) -> None:
        self._maybe_fail("auth_check")

    def create_commit(self, repo_id: str, operations: Any, *, commit_message: str, repo_type: str | None = None,
                      revision: str | None = None, create_pr: bool | None = None, **_: Any) -> SimpleNamespace:
        """A commit to main, to a new pull request (``create_pr``), or to an open one (``revision="refs/pr/N"``);
        a pull request's commits stay out of ``commits`` and ``files`` until it is merged."""
        self._maybe_fail("create_commit")
        if self.pause is not None:
            self.pause.touch()
            time.sleep(120)
        added, deleted = {}, []
        for operation in operations:
            if type(operation).__name__ == "CommitOperationDelete":
                deleted.append(operation.path_in_repo)
                continue
            source = operation.path_or_fileobj
            if isinstance(source, bytes):
                data = source
            elif isinstance(source, (str, Path)):
                data = Path(source).read_bytes()
            else:
                data = source.read()
            added[operation.path_in_repo] = data
        commit = {"repo_id": repo_id, "repo_type": repo_type, "message": commit_message,
                  "added": sorted(added), "deleted": sorted(deleted)}
        with self._lock:
            if create_pr or revision not in (None, "main"):
                return self._commit_to_pull(added, deleted, commit, create_pr, revision)
            _apply(self.files, added, deleted)
            self.commits.append(commit)
            if self.folder is not None:
                self._persist(added, deleted, commit)
        return SimpleNamespace(oid=f"{len(self.commits):040x}", commit_message=commit_message, pr_num=None,
                               pr_revision=None)

    def _commit_to_pull(self, added: dict[str, bytes], deleted: list[str], commit: dict[str, Any],
                        create_pr: bool | None, revision: str | None) -> SimpleNamespace:
        if create_pr:
            number = len(self.pulls) + 1
            self.pulls[number] = {"files": dict(self.files), "commits": [], "status": "open"}
        else:
            number = int(str(revision).removeprefix("refs/pr/"))
            if self.pulls.get(number, {}).get("status") != "open":
                raise ValueError(f"no open pull request at {revision}")
        pull = self.pulls[number]
        _apply(pull["files"], added, deleted)
        pull["commits"].append(commit)
        return SimpleNamespace(oid=f"pr{number}-{len(pull['commits'])}", commit_message=commit["message"],
                               pr_num=number, pr_revision=f"refs/pr/{number}")

    def merge_pull_request(self, repo_id: str, discussion_num: int, *, comment: str | None = None,
                           repo_type: str | None = None, **_: Any) -> None:
        """Main becomes the pull request's files, as one commit."""
        self._maybe_fail("merge_pull_request")
        with self._lock:
            pull = self.pulls[discussion_num]
            assert pull["status"] == "open"
            added = {path: data for path, data in pull["files"].items() if self.files.get(path) != data}
            deleted = [path for path in self.files if path not in pull["files"]]
            commit = {"repo_id": repo_id, "repo_type": repo_type, "message": f"Merge pull request #{discussion_num}",
                      "added": sorted(added), "deleted": sorted(deleted), "pull": discussion_num}
            _apply(self.files, added, deleted)
            self.commits.append(commit)
            pull["status"] = "merged"

    def change_discussion_status(self, repo_id: str, discussion_num: int, new_status: str, *,
                                 comment: str | None = None, repo_type: str | None = None, **_: Any) -> None:
        self._maybe_fail("change_discussion_status")
        self.pulls[discussion_num]["status"] = new_status

    def _persist(self, added: dict[str, bytes], deleted: list[str], commit: dict[str, Any]) -> None:
        for path, data in added.items():
            target = self.folder / "repo" / path
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(target.name + ".part")
            temp.write_bytes(data)
            os.replace(temp, target)
        for path in deleted:
            (self.folder / "repo" / path).unlink(missing_ok=True)
        with open(self.folder / "commits.jsonl", "a") as log:
            log.write(json.dumps(commit) + "\n")

    def list_repo_tree(self, repo_id: str, *, recursive: bool = False, repo_type: str | None = None,
                       **_: Any) -> list[SimpleNamespace]:
        self._maybe_fail("list_repo_tree")
        return [SimpleNamespace(path=path, size=len(data)) for path, data in sorted(self.files.items())]

    def list_repo_files(self, repo_id: str, *, repo_type: str | None = None, **_: Any) -> list[str]:
        self._maybe_fail("list_repo_files")
        return sorted(self.files)

    def snapshot_download(self, repo_id: str, *, repo_type: str | None = None, local_dir: str,
                          allow_patterns: list[str] | None = None, **_: Any) -> str:
        self._maybe_fail("snapshot_download")
        for path, data in sorted(self.files.items()):
            if allow_patterns and not any(fnmatch.fnmatch(path, pattern) for pattern in allow_patterns):
                continue
            target = Path(local_dir) / path
            if target.exists() and target.read_bytes() == data:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f".{target.name}.part")
            temp.write_bytes(data)
            os.replace(temp, target)
        return local_dir

    def run_as_future(self, fn: Any, *args: Any, **kwargs: Any) -> Future:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1)
        return self._executor.submit(fn, *args, **kwargs)

    # ---------------------------------------------------------------- checks
    def times_committed(self, path: str) -> int:
        return sum(path in commit["added"] for commit in self.commits)
