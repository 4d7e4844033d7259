"""The Hub sync (toonmatte.dataset.hub) against a fake HfApi: version files and manifest for saves,
re-saves and moves; restoring an empty root; pushes that fail; a kill during a push and a restart."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from fake_hub import REPO_ID, FakeHub, http_error, network_error
from toonmatte.dataset import KINDS, DatasetStore, encode_triple, list_items
from toonmatte.dataset import hub as hub_module
from toonmatte.dataset.hub import HubSync, default_dataset_root, read_manifests, start_hub_sync
from toonmatte.errors import ToonmatteError

REPO = Path(__file__).resolve().parents[1]


def _images(value: int, size: tuple[int, int] = (12, 16)) -> tuple[np.ndarray, np.ndarray]:
    return np.full((*size, 3), value, np.uint8), np.full(size, value, np.uint8)


def _save(store: DatasetStore, stem: str, value: int, prediction: bool = True, **kwargs) -> str:
    image, alpha = _images(value)
    predicted = np.full(alpha.shape, (value + 7) % 256, np.uint8) if prediction else None
    return store.save_triple(stem, encode_triple(image, alpha, image, predicted), model="toonout",
                             model_version="v1", **kwargs)


def settle(sync: HubSync) -> None:
    """Wait for the push the scheduler's thread makes as it starts, so a test's own pushes come after it."""
    if sync._scheduler is not None:
        while not hasattr(sync._scheduler, "last_future"):
            time.sleep(0.005)
        sync._scheduler.last_future.result()


@pytest.fixture
def syncs():
    """HubSyncs made by a test, closed (and their scheduler threads stopped) at its end."""
    made: list[HubSync] = []

    def make(store: DatasetStore, api: FakeHub, start: bool = True, restore: bool = False) -> HubSync:
        sync = HubSync(store, REPO_ID, api, every=60)
        made.append(sync)
        if restore:
            sync.restore()
        if start:
            sync.start()
            settle(sync)
        return sync

    yield make
    for sync in made:
        sync.close(timeout=10)


def _manifest(api: FakeHub) -> list[dict]:
    """Every pushed manifest entry, oldest first."""
    lines = []
    for path, data in sorted(api.files.items()):
        if path.startswith("manifest/"):
            lines += [json.loads(line) for line in data.splitlines()]
    return sorted(lines, key=lambda entry: entry["at"])


def _snapshot(store: DatasetStore) -> dict:
    """Everything a restore must reproduce: index rows, current files, history, predictions, listing."""
    state = {"listing": [item.name for item in list_items(store.root)]}
    for record in store.items():
        if not record.versions:
            continue
        txid = store.committed_txid(record.stem)
        prediction = store.root / ".toonmatte" / "predictions" / f"{record.stem}.{txid}.png"
        state[record.stem] = {
            "row": asdict(record), "txid": txid,
            "files": {kind: path.read_bytes() for kind, path in store.triple_paths(record.stem).items()},
            "history": [(folder.name, {kind: (folder / f"{kind}.png").read_bytes() for kind in KINDS})
                        for folder in store.history(record.stem)],
            "prediction": prediction.read_bytes() if prediction.exists() else None,
            "reviews": store.reviews(record.stem)}
    return state


def test_saves_and_resaves_are_new_files_and_manifest_entries(tmp_path, syncs):
    api = FakeHub()
    store = DatasetStore(tmp_path / "ds", generation="g")
    sync = syncs(store, api)
    _save(store, "a", 10, annotator="ann")
    first = store.committed_txid("a")
    _save(store, "a", 20, annotator="ann")
    second = store.committed_txid("a")
    _save(store, "b", 30, prediction=False)
    assert sync.status().pending_versions == 3
    assert "3 saves wait for the next push" in sync.status_line()
    sync.push_now()

    commit = api.commits[-1]
    assert (commit["repo_id"], commit["repo_type"]) == (REPO_ID, "dataset")
    assert api.repos[REPO_ID] == {"private": True, "repo_type": "dataset"}
    for txid in (first, second):
        for kind in ("im", "gt", "an", "prediction"):
            data = api.files[f"versions/a/{txid}/{kind}.png"]
            assert data  # each version is its own set of files
        other = first if txid == second else second
        assert api.files[f"versions/a/{txid}/gt.png"] != api.files[f"versions/a/{other}/gt.png"]
    assert api.files[f"versions/a/{second}/gt.png"] == store.triple_paths("a")["gt"].read_bytes()
    assert api.files[f"versions/a/{first}/gt.png"] == (store.history("a")[0] / "gt.png").read_bytes()
    assert not any(path.startswith(f"versions/b/{store.committed_txid('b')}/prediction") for path in api.files)
    entries = _manifest(api)
    assert [(e["op"], e["stem"], e["row"]["last_txid"]) for e in entries] == [
        ("save", "a", first), ("save", "a", second), ("save", "b", store.committed_txid("b"))]
    assert entries[1]["replaced"] == store.history("a")[0].name and entries[0]["replaced"] is None
    row = entries[1]["row"]
    assert {k: row[k] for k in ("split", "generation", "status", "annotator", "model", "versions")} == {
        "split": "train", "generation": "g", "status": "corrected", "annotator": "ann", "model": "toonout",
        "versions": 2}
    assert row == {**asdict(store.get("a")), "last_txid": second}
    assert sync.status().pending_versions == 0 and "Everything is on the Hub" in sync.status_line()
    # the sync never writes a pushed file again: a second push sends nothing
    count = len(api.commits)
    sync.push_now()
    assert len(api.commits) == count
    assert not list(tmp_path.joinpath("ds", ".toonmatte", "hub").rglob("*.tmp"))


def test_moves_and_status_changes_are_recorded_and_nothing_is_sent_twice(tmp_path, syncs):
    api = FakeHub()
    store = DatasetStore(tmp_path / "ds", generation="g")
    sync = syncs(store, api)
    _save(store, "a", 10)
    _save(store, "b", 20)
    sync.push_now()
    [item] = [item for item in list_items(store.root) if item.stem == "a"]
    store.move_item(item, "val")
    store.record("b", status="reviewed")  # a status change without a new version: found before the push
    sync.push_now()
    ops = [(e["op"], e["stem"], e["row"]["split"], e["row"]["status"]) for e in _manifest(api)]
    assert ops[2:] == [("move", "a", "val", "corrected"), ("update", "b", "train", "reviewed")]
    paths = [path for commit in api.commits for path in commit["added"] if path.startswith("versions/")]
    assert len(paths) == len(set(paths)) == 8  # two versions of four files, each sent once
    assert all(api.times_committed(path) == 1 for path in paths)


def test_restore_rebuilds_an_identical_dataset(tmp_path, syncs):
    api = FakeHub()
    store = DatasetStore(tmp_path / "first", generation="2026-01-01_studio")
    sync = syncs(store, api)
    _save(store, "a", 10, annotator="ann")
    _save(store, "a", 20, annotator="bob")
    _save(store, "a", 30)
    _save(store, "b", 40, prediction=False)
    _save(store, "c", 50)
    sync.push_now()
    [item] = [item for item in list_items(store.root) if item.stem == "c"]
    store.move_item(item, "test")
    store.record("b", status="reviewed")
    store.record("queued", status="todo")  # never saved: not part of the pushed dataset
    store.review("a", "rev", approved=False, comment="the hair still has a halo")
    store.review("a", "rev", approved=True)
    sync.push_now()
    expected = _snapshot(store)
    assert [review["verdict"] for review in expected["a"]["reviews"]] == ["returned", "approved"]

    fresh = DatasetStore(tmp_path / "second", generation="other")
    restored = syncs(fresh, api, start=False)
    assert restored.restore() == 3
    assert _snapshot(fresh) == expected
    assert [len(fresh.history(stem)) for stem in "abc"] == [2, 0, 0]
    assert not (fresh.root / ".toonmatte" / "hub" / "restoring").exists()
    assert restored.restore() == 0  # no longer empty
    commits = len(api.commits)
    restored.start()
    restored.push_now()
    assert len(api.commits) == commits  # what it restored is on the Hub already
    _save(fresh, "a", 60)  # and it carries on where the first one stopped
    restored.push_now()
    assert _manifest(api)[-1]["row"]["versions"] == 4 and len(fresh.history("a")) == 3


def test_an_interrupted_restore_finishes_on_the_next_start(tmp_path, syncs, monkeypatch):
    api = FakeHub()
    store = DatasetStore(tmp_path / "first", generation="g")
    sync = syncs(store, api)
    for value, stem in enumerate("abcd"):
        _save(store, stem, value * 10)
        _save(store, stem, value * 10 + 1)
    sync.push_now()
    expected = _snapshot(store)

    fresh = DatasetStore(tmp_path / "second")
    calls = []
    real = DatasetStore.restore_item

    def crash_on_third(self, *args, **kwargs):
        calls.append(args[0].stem)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process stops here
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DatasetStore, "restore_item", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        syncs(fresh, api, start=False).restore()
    monkeypatch.setattr(DatasetStore, "restore_item", real)
    assert list_items(fresh.root)  # half restored: no longer empty, but the marker says to go on
    again = DatasetStore(tmp_path / "second")
    assert syncs(again, api, start=False).restore() == 4
    assert _snapshot(again) == expected


@pytest.mark.parametrize("error, phrase", [
    (network_error(), "could not be reached (no network"),
    (ConnectionError("no route"), "could not be reached (no network"),
    (http_error(401), "refused the token"),
    (http_error(403), f"may not write to {REPO_ID}"),
    (http_error(429), "too many requests"),
    (http_error(503), "HTTP 503"),
])
def test_a_failed_push_is_one_sentence_loses_nothing_and_the_next_push_retries(tmp_path, syncs, caplog, error, phrase):
    api = FakeHub()
    store = DatasetStore(tmp_path / "ds", generation="g")
    sync = syncs(store, api)
    _save(store, "a", 10)
    api.fail("create_commit", error)
    with caplog.at_level(logging.WARNING, logger="toonmatte.dataset.hub"):
        sync.push_now()
    line = sync.status_line()
    assert line.startswith(f"Pushing to {REPO_ID} failed at ") and phrase in line
    assert line.endswith("1 save waits on this disk until a push goes through.") and line.count(".") <= 3
    assert any(phrase in record.getMessage() for record in caplog.records)
    assert not [path for path in api.files if path.startswith("versions/")]
    _save(store, "b", 20)
    sync.push_now()
    assert "Everything is on the Hub" in sync.status_line() and sync.status().failure is None
    versions = [path for path in api.files if path.startswith("versions/")]
    assert len(versions) == 8 and all(api.times_committed(path) == 1 for path in versions)
    assert [e["stem"] for e in _manifest(api)] == ["a", "b"]


def test_a_bad_token_at_start_is_said_and_pushing_starts_once_it_works(tmp_path, syncs):
    api = FakeHub()
    api.fail("create_repo", http_error(401))
    store = DatasetStore(tmp_path / "ds", generation="g")
    sync = syncs(store, api)
    assert "refused the token" in sync.status_line()
    _save(store, "a", 10)
    assert sync.status().pending_versions == 1
    sync.push_now()  # the scheduler is made on this try, and pushes
    assert [path for path in api.files if path.startswith("versions/a/")] and sync.status().failure is None


def test_a_token_without_write_access_is_said_before_any_push(tmp_path, syncs):
    api = FakeHub()
    api.fail("auth_check", http_error(403))
    sync = syncs(DatasetStore(tmp_path / "ds"), api)
    assert f"the token may not write to {REPO_ID} (give HF_TOKEN write access to it)" in sync.status_line()
    assert "nothing is waiting to be pushed" in sync.status_line()


def test_a_save_that_cannot_be_staged_still_stands_and_is_pushed_later(tmp_path, syncs, monkeypatch):
    api = FakeHub()
    store = DatasetStore(tmp_path / "ds", generation="g")
    sync = syncs(store, api)

    def no_space(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hub_module, "link_or_copy", no_space)
    _save(store, "a", 10)  # the save itself succeeds
    assert store.get("a").versions == 1
    assert "could not be prepared for it on this disk (no space left on device)" in sync.status_line()
    monkeypatch.undo()
    sync.push_now()
    assert f"versions/a/{store.committed_txid('a')}/gt.png" in api.files and sync.status().failure is None


def test_an_append_cut_short_by_a_full_disk_leaves_no_half_line(tmp_path, monkeypatch):
    path = tmp_path / "manifest.jsonl"
    hub_module._append_synced(path, b'{"stem": "a"}\n')
    real_write = os.write

    def write_part_then_fail(fd, data):
        if len(data) > 5:
            return real_write(fd, bytes(data[:5]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hub_module.os, "write", write_part_then_fail)
    with pytest.raises(OSError):
        hub_module._append_synced(path, b'{"stem": "b"}\n')
    monkeypatch.undo()
    hub_module._append_synced(path, b'{"stem": "c"}\n')
    assert path.read_bytes() == b'{"stem": "a"}\n{"stem": "c"}\n'


def test_a_restore_that_cannot_reach_the_hub_stops_the_start_in_one_sentence(tmp_path, syncs):
    api = FakeHub()
    api.fail("list_repo_tree", network_error())
    sync = syncs(DatasetStore(tmp_path / "ds"), api, start=False)
    with pytest.raises(ToonmatteError, match=r"^The dataset could not be restored from the Hub \(team/mattes\) "
                                             r"because the Hub could not be reached.*start it again\.$"):
        sync.restore()
    assert (tmp_path / "ds" / ".toonmatte" / "hub" / "restoring").exists()  # the next start tries again


def test_start_hub_sync_is_off_by_default_and_needs_a_token(tmp_path, caplog, monkeypatch):
    store = DatasetStore(tmp_path / "ds")
    assert start_hub_sync(store, environ={}) is None
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with caplog.at_level(logging.WARNING):
        assert start_hub_sync(store, environ={"TOONMATTE_HUB_DATASET": REPO_ID}) is None
    assert "there is no Hugging Face token: set HF_TOKEN" in caplog.text
    with pytest.raises(ToonmatteError, match="not a Hub dataset name"):
        start_hub_sync(store, environ={"TOONMATTE_HUB_DATASET": "no-owner"}, api=FakeHub())
    api = FakeHub()
    sync = start_hub_sync(store, environ={"TOONMATTE_HUB_DATASET": REPO_ID, "TOONMATTE_HUB_EVERY": "60"}, api=api)
    try:
        assert sync is not None and sync.every == 60 and REPO_ID in api.repos
    finally:
        sync.close(timeout=10)


def test_default_dataset_root_uses_persistent_storage_on_a_space(tmp_path):
    data = tmp_path / "data"
    assert default_dataset_root({}, data) == Path("dataset")
    assert default_dataset_root({"SPACE_ID": "o/s"}, data) == Path("dataset")  # no persistent storage
    data.mkdir()
    assert default_dataset_root({"SPACE_ID": "o/s"}, data) == data / "dataset"
    assert default_dataset_root({"SPACE_ID": "o/s", "TOONMATTE_DATASET": "/x"}, data) == Path("/x")


def test_concurrent_saves_while_pushing_lose_nothing(tmp_path, syncs):
    import threading

    api = FakeHub()
    store = DatasetStore(tmp_path / "ds", generation="g")
    sync = syncs(store, api)
    done = threading.Event()

    def save_many(stem: str) -> None:
        for value in range(8):
            _save(store, stem, value)
        done.set()

    writers = [threading.Thread(target=save_many, args=(stem,)) for stem in ("x", "y")]
    for writer in writers:
        writer.start()
    while any(writer.is_alive() for writer in writers):
        sync.push_now()
    sync.push_now()
    entries = read_manifests(tmp_path / "ds" / ".toonmatte" / "hub" / "repo" / "manifest")
    for stem in ("x", "y"):
        assert [e["row"]["versions"] for e in entries[stem]] == list(range(1, 9))
        for entry in entries[stem]:
            assert f"versions/{stem}/{entry['row']['last_txid']}/an.png" in api.files
    assert _manifest(api) == sorted((e for es in entries.values() for e in es), key=lambda e: e["at"])


_CHILD = """
import sys, time
from pathlib import Path
sys.path[:0] = [{repo!r}, {tests!r}]
import numpy as np
from fake_hub import FakeHub, REPO_ID
from test_hub import settle
from toonmatte.dataset import DatasetStore, encode_triple
from toonmatte.dataset import hub
root, remote, marker, mode = Path({root!r}), Path({remote!r}), Path({marker!r}), {mode!r}
store = DatasetStore(root, generation="g")
sync = hub.HubSync(store, REPO_ID, FakeHub(remote), every=60)
sync.start()
settle(sync)
for stem, value in (("a", 10), ("a", 20), ("b", 30)):
    store.save_triple(stem, encode_triple(np.full((8, 8, 3), value, np.uint8), np.full((8, 8), value, np.uint8),
                                          np.full((8, 8, 3), value, np.uint8)))
if mode == "during":
    sync.api.pause = marker
else:
    def pause(step):
        marker.touch()
        time.sleep(120)
    hub._fault_point = pause
sync.push_now()
"""


@pytest.mark.parametrize("mode", ["during", "after"])
def test_a_kill_during_a_push_then_a_restart_pushes_what_was_pending_exactly_once(tmp_path, syncs, mode):
    root, remote, marker = tmp_path / "ds", tmp_path / "remote", tmp_path / "paused"
    remote.mkdir()
    script = _CHILD.format(repo=str(REPO), tests=str(REPO / "tests"), root=str(root), remote=str(remote),
                           marker=str(marker), mode=mode)
    child = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert child.poll() is None and time.monotonic() < deadline, "the pusher never reached its pause"
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    pushed_before = FakeHub(remote)
    assert bool(pushed_before.commits) == (mode == "after")

    store = DatasetStore(root, generation="g")
    api = FakeHub(remote)
    sync = syncs(store, api)
    sync.push_now()
    assert "Everything is on the Hub" in sync.status_line()
    versions = [path for path in api.files if path.startswith("versions/")]
    assert len(versions) == 9 and all(api.times_committed(path) == 1 for path in versions)
    assert [(e["stem"], e["row"]["versions"]) for e in _manifest(api)] == [("a", 1), ("a", 2), ("b", 1)]
    assert len(api.commits) == 1  # the killed push never landed, or it did and is not repeated

    fresh = DatasetStore(tmp_path / "restored")
    syncs(fresh, FakeHub(remote), start=False).restore()
    assert _snapshot(fresh) == _snapshot(store)


def test_the_studio_does_not_start_empty_over_a_dataset_it_could_not_restore(tmp_path):
    env = {**os.environ, "TOONMATTE_HUB_DATASET": REPO_ID, "HF_TOKEN": "hf_not_a_token", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "app.py", "--dataset-root", str(tmp_path / "ds"), "--model", "fallback",
                           "--port", "0"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert (f"error: The dataset could not be restored from the Hub ({REPO_ID}) because the Hub is switched off on "
            "this machine (HF_HUB_OFFLINE is set); the studio did not start") in done.stderr
    assert not list_items(tmp_path / "ds")


def test_a_damaged_manifest_entry_is_skipped_with_a_warning_and_the_rest_restored(tmp_path, syncs, caplog):
    """A manifest row missing a field every manifest has (edited by hand, say) restores nothing for its item and
    says so; the start goes on with the other items instead of stopping on a traceback."""
    api = FakeHub()
    store = DatasetStore(tmp_path / "first", generation="g")
    sync = syncs(store, api)
    _save(store, "a", 10)
    _save(store, "b", 20)
    sync.push_now()
    for path, data in list(api.files.items()):
        if path.startswith("manifest/"):
            entries = [json.loads(line) for line in data.splitlines()]
            for entry in entries:
                if entry["stem"] == "b":
                    del entry["row"]["split"]
            api.files[path] = b"".join(json.dumps(entry).encode() + b"\n" for entry in entries)

    fresh = DatasetStore(tmp_path / "second", generation="g")
    with caplog.at_level("WARNING"):
        assert syncs(fresh, api, start=False).restore() == 1
    assert [item.stem for item in list_items(fresh.root)] == ["a"]
    assert "manifest's entry for b is damaged" in caplog.text


def test_reviews_the_sync_did_not_see_are_pushed_with_the_next_push(tmp_path, syncs):
    """A review recorded by another process on the same root (or before this sync kept reviews) reaches the
    manifest at the next push, with its comment, so a restart does not lose what the reviewer said."""
    api = FakeHub()
    store = DatasetStore(tmp_path / "ds", generation="g")
    sync = syncs(store, api)
    _save(store, "a", 10)
    sync.push_now()
    assert "reviews" not in _manifest(api)[-1]
    with DatasetStore(tmp_path / "ds", generation="g") as other:
        other.review("a", "rev", approved=False, comment="mask the sword too")
    sync.push_now()
    latest = _manifest(api)[-1]
    assert latest["stem"] == "a" and latest["op"] == "update" and latest["row"]["status"] == "returned"
    [review] = latest["reviews"]
    assert (review["reviewer"], review["verdict"], review["comment"]) == ("rev", "returned", "mask the sword too")
    assert review["txid"] == store.committed_txid("a")
    commits = len(api.commits)
    sync.push_now()
    assert len(api.commits) == commits  # staged once


def test_a_large_push_goes_up_in_commits_of_bounded_size_with_the_manifest_last(tmp_path, syncs, monkeypatch):
    """The Hub recommends at most a hundred files per commit (here ten, to keep the test small): a push of more is
    several commits, the manifest in the last, so the repo never has an entry whose files it lacks; when a commit
    fails, what earlier commits sent is not sent again and the next push sends the rest."""
    monkeypatch.setattr(hub_module, "FILES_PER_COMMIT", 10)
    api = FakeHub()
    store = DatasetStore(tmp_path / "ds", generation="g")
    sync = syncs(store, api)
    for index, stem in enumerate("abcdef"):
        _save(store, stem, 10 * index)  # four files each: im, gt, an and the prediction
    api.fail("create_commit", ConnectionError("no route"), after=1)  # the second commit of the push
    sync.push_now()
    [first] = api.commits
    assert len(first["added"]) == 10 and not any(path.startswith("manifest/") for path in first["added"])
    assert "(commit 1 of 3)" in first["message"] and "could not be reached" in sync.status_line()
    assert "manifest/" not in "".join(api.files)  # a restore now finds nothing half-made

    sync.push_now()
    commits = api.commits[1:]
    assert [len(commit["added"]) for commit in commits] == [10, 5]  # 24 version files less the 10 sent, + manifest
    assert [path.startswith("manifest/") for path in commits[-1]["added"]].count(True) == 1
    versions = [path for path in api.files if path.startswith("versions/")]
    assert len(versions) == 24 and all(api.times_committed(path) == 1 for path in versions)
    assert sorted(entry["stem"] for entry in _manifest(api)) == list("abcdef")
    assert "Everything is on the Hub" in sync.status_line()


def test_a_sync_started_on_a_dataset_with_history_pushes_the_replaced_versions_too(tmp_path, syncs):
    """Turning the sync on for a dataset that was saved to (and corrected again) before: the versions each item
    replaced go up too, so a restore gives back the history as well, not only the current triples."""
    api = FakeHub()
    store = DatasetStore(tmp_path / "first", generation="g")
    _save(store, "a", 10, annotator="ann")
    _save(store, "a", 20, annotator="bob")
    _save(store, "a", 30)
    _save(store, "b", 40)
    assert len(store.history("a")) == 2
    sync = syncs(store, api)  # starts now, with the saves above already on disk
    sync.push_now()
    expected = _snapshot(store)

    fresh = DatasetStore(tmp_path / "second", generation="other")
    assert syncs(fresh, api, start=False).restore() == 2
    assert _snapshot(fresh) == expected
    assert [folder.name for folder in fresh.history("a")] == [folder.name for folder in store.history("a")]

    _save(store, "a", 50)  # carries on as usual: one new version, its predecessor already up
    sync.push_now()
    again = DatasetStore(tmp_path / "third", generation="other")
    assert syncs(again, api, start=False).restore() == 2
    assert _snapshot(again) == _snapshot(store) and len(again.history("a")) == 3


def test_an_incomplete_replaced_version_is_left_out_and_the_others_keep_their_names(tmp_path, syncs, caplog):
    api = FakeHub()
    store = DatasetStore(tmp_path / "first", generation="g")
    for value in (10, 20, 30, 40):
        _save(store, "a", value)
    oldest, middle, newest = store.history("a")
    (middle / "gt.png").unlink()  # damaged by hand
    with caplog.at_level("WARNING"):
        syncs(store, api).push_now()
    assert f"The replaced version {middle.name} of a is incomplete" in caplog.text

    fresh = DatasetStore(tmp_path / "second", generation="g")
    assert syncs(fresh, api, start=False).restore() == 1
    assert [folder.name for folder in fresh.history("a")] == [oldest.name, newest.name]
    for original, restored in zip((oldest, newest), fresh.history("a")):
        assert all((restored / f"{kind}.png").read_bytes() == (original / f"{kind}.png").read_bytes() for kind in KINDS)
    assert all(path.read_bytes() == store.triple_paths("a")[kind].read_bytes()
               for kind, path in fresh.triple_paths("a").items())
