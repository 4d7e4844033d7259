"""The dataset store: round trips, history, stem sanitizing, crash recovery, concurrent writers, index, state."""
from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from toonmatte.dataset import (
    MAX_STEM_LENGTH,
    STATUSES,
    DatasetStore,
    EncodedTriple,
    encode_triple,
    list_items,
    sanitize_stem,
)
from toonmatte.dataset import store as store_module
from toonmatte.dataset.files import hash_file, read_png
from toonmatte.errors import ToonmatteError, WriteError

FAULT_STEPS = ("temps-written", "history-staged", "indexed", "renamed-im", "renamed-gt", "renamed-an",
               "history-committed")
# Writer processes come from a fork server: a clean single-threaded process, so that forking never
# copies a lock held by some other thread of the test run (which could deadlock the child).
FORK = multiprocessing.get_context("forkserver")
FORK.set_forkserver_preload(["numpy", "cv2", "toonmatte.dataset.store"])


def _uniform(value: int, size: tuple[int, int] = (12, 16)) -> tuple[np.ndarray, np.ndarray]:
    """An image and alpha filled with ``value``, so every file of a triple says which save wrote it."""
    return np.full((*size, 3), value, np.uint8), np.full(size, value, np.uint8)


def _save_uniform(store: DatasetStore, stem: str, value: int) -> str:
    image, alpha = _uniform(value)
    return store.save_triple(stem, encode_triple(image, alpha, image))


def _value_of(folder_or_files: dict[str, Path]) -> int:
    """The single value a triple's three files hold; fails if they disagree (a mixed triple)."""
    values = set()
    for path in folder_or_files.values():
        values.update(np.unique(read_png(path)).tolist())
    assert len(values) == 1, f"mixed triple: {values}"
    return values.pop()


def _history_values(store: DatasetStore, stem: str) -> list[int]:
    return [_value_of({k: folder / f"{k}.png" for k in ("im", "gt", "an")}) for folder in store.history(stem)]


def _leftovers(root: Path) -> list[Path]:
    """Temp files, journals and staged history folders anywhere under the root."""
    found = [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    found += list((root / ".toonmatte" / "journal").iterdir())
    found += list((root / ".history" / ".staging").iterdir())
    return found


def _random_images(seed: int, size: tuple[int, int] = (37, 53)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (*size, 3), dtype=np.uint8), rng.integers(0, 256, size, dtype=np.uint8),
            rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def test_round_trip_is_exact_and_uses_toonout_layout(tmp_path):
    store = DatasetStore(tmp_path / "root", split="train", generation="2025-01-01_studio")
    image, alpha, foreground = _random_images(0)
    stem = store.save_triple("shots/frame 001.png", encode_triple(image, alpha, foreground), model="toonout",
                             model_version="v1", annotator="ana")
    assert stem == "frame_001"
    folder = tmp_path / "root" / "train" / "2025-01-01_studio"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png")) == [
        "an/frame_001.png", "gt/frame_001.png", "im/frame_001.png"]
    assert sorted(p.name for p in (tmp_path / "root").iterdir() if not p.name.startswith(".")) == ["train"]
    im, gt, an = store.load_triple(stem)
    assert np.array_equal(im, image) and np.array_equal(gt, alpha)
    assert an.shape == (37, 53, 4) and np.array_equal(an[..., :3], foreground) and np.array_equal(an[..., 3], alpha)
    gt_file = cv2.imread(str(folder / "gt" / "frame_001.png"), cv2.IMREAD_UNCHANGED)
    assert gt_file.ndim == 2 and gt_file.dtype == np.uint8
    record = store.get(stem)
    assert (record.status, record.model, record.model_version, record.annotator, record.versions) == (
        "corrected", "toonout", "v1", "ana", 1)
    assert record.changed_fraction is None and store.history(stem) == []


def test_a_triple_of_mismatched_files_is_refused_before_anything_is_written(tmp_path):
    store = DatasetStore(tmp_path)
    image, alpha, foreground = _random_images(4)
    good = encode_triple(image, alpha, foreground)
    other = encode_triple(image[:20], alpha[:20], foreground[:20], alpha[:20])
    for kwargs, phrase in (({"gt": other.gt}, "one size"), ({"gt": good.im}, "8-bit gray"),
                           ({"an": good.im}, "8-bit RGBA"), ({"im": b"GIF89a" + good.im}, "not a PNG"),
                           ({"prediction": good.gt}, "come together"), ({"prediction": other.prediction,
                                                                       "changes": (0.0, 0.0)}, "one size")):
        with pytest.raises(ToonmatteError, match=phrase) as caught:
            EncodedTriple(**{"im": good.im, "gt": good.gt, "an": good.an, **kwargs})
        assert "\n" not in str(caught.value)
    with pytest.raises(ToonmatteError, match="takes an EncodedTriple"):
        store.save_triple("plain", (image, alpha))
    assert store.get("plain") is None and not list(tmp_path.glob("train/*/*/*"))


def test_damaged_journal_is_reported_in_one_sentence(tmp_path):
    DatasetStore(tmp_path)
    (tmp_path / ".toonmatte" / "journal" / f"item.{'0' * 32}.json").write_text("{not json")
    with pytest.raises(ToonmatteError, match="journal .* is damaged"):
        DatasetStore(tmp_path)


def test_resave_keeps_previous_versions_in_history(tmp_path):
    store = DatasetStore(tmp_path, generation="g")
    first, second, third = _random_images(1), _random_images(2), _random_images(3)
    for image, alpha, fg in (first, second, third):
        store.save_triple("item", encode_triple(image, alpha, fg))
    folders = store.history("item")
    assert len(folders) == 2 and all(f.parent == tmp_path / ".history" / "train" / "g" / "item" for f in folders)
    for folder, (image, alpha, fg) in zip(folders, (first, second)):
        assert np.array_equal(read_png(folder / "im.png"), image)
        assert np.array_equal(read_png(folder / "gt.png"), alpha)
        assert np.array_equal(read_png(folder / "an.png")[..., :3], fg)
    assert np.array_equal(store.load_triple("item")[1], third[1])
    assert store.get("item").versions == 3


def test_change_stats_made_before_the_store_and_the_given_source_hash_are_recorded(tmp_path):
    store = DatasetStore(tmp_path / "root")
    source = tmp_path / "pic.png"
    source.write_bytes(b"not really a png but bytes to hash")
    image, alpha = _uniform(200)
    predicted = alpha.copy()
    predicted[:3] = 100  # 3 of 12 rows differ by 100
    triple = encode_triple(image, alpha, image, predicted)
    assert triple.changes == pytest.approx((0.25, 25.0)) and triple.size == (12, 16)
    digest = hash_file(source)
    source.unlink()  # the store records the hash it is given: it never reads the source again
    store.save_triple("pic", triple, source_path=str(source), source_hash=digest)
    record = store.get("pic")
    assert record.changed_fraction == pytest.approx(0.25) and record.mean_abs_delta == pytest.approx(25.0)
    assert (record.source_path, record.source_hash, record.pixels) == (str(source), digest, 12 * 16)
    assert np.array_equal(store.prediction_pair("pic")[0], predicted)


@pytest.mark.parametrize("name, expected", [
    ("../../etc/passwd", "passwd"),
    ("a/b\\c.png", "c"),
    ("..", "untitled"),
    ("", "untitled"),
    (".hidden.png", "hidden"),
    ("v1.2.png", "v1_2"),
    ("CON.png", "_CON"),
])
def test_sanitize_stem(name, expected):
    assert sanitize_stem(name) == expected


def test_sanitize_stem_unicode_and_long_names_stay_distinct_and_bounded():
    cat, dog = sanitize_stem("ねこ.png"), sanitize_stem("いぬ.png")
    assert cat != dog and cat.isascii() and dog.isascii()
    assert sanitize_stem("café.png").startswith("cafe-")
    long_a, long_b = sanitize_stem("a" * 500 + "1.png"), sanitize_stem("a" * 500 + "2.png")
    assert long_a != long_b and len(long_a) <= MAX_STEM_LENGTH
    for name in ("../../etc/passwd", "a/b\\c.png", "ねこ.png", "..", "", "x" * 400, "-rf", "a:b*c?.png"):
        stem = sanitize_stem(name)
        assert stem and sanitize_stem(stem) == stem
        assert all(c.isalnum() and c.isascii() or c in "_-" for c in stem) and not stem.startswith("-")


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b\\c.png", "ねこ.png", "", "..", "/" * 3, "x" * 1000])
def test_nothing_is_written_outside_the_root(tmp_path, name):
    root = tmp_path / "root"
    store = DatasetStore(root)
    stem = _save_uniform(store, name, 7)
    _save_uniform(store, name, 8)
    assert [p.name for p in tmp_path.iterdir()] == ["root"]
    for path in root.rglob("*"):
        assert path.resolve().is_relative_to(root.resolve())
    assert _value_of(store.triple_paths(stem)) == 8 and _history_values(store, stem) == [7]


@pytest.mark.parametrize("kwargs, phrase", [
    ({"alpha": np.zeros((12, 16, 1), np.uint8)}, "2-D uint8"),
    ({"alpha": np.zeros((12, 16), np.float32)}, "2-D uint8"),
    ({"alpha": np.zeros((16, 12), np.uint8)}, "image's size"),
    ({"image": np.zeros((12, 16, 4), np.uint8)}, "8-bit RGB"),
    ({"image": np.zeros((12, 16, 3), np.uint16)}, "8-bit RGB"),
    ({"foreground": np.zeros((12, 16), np.uint8)}, "foreground"),
    ({"predicted_alpha": np.zeros((3, 3), np.uint8)}, "predicted alpha"),
    ({"status": "done"}, "Unknown status"),
])
def test_bad_input_raises_one_sentence(tmp_path, kwargs, phrase):
    store = DatasetStore(tmp_path)
    image, alpha = _uniform(5)
    args = {"image": image, "alpha": alpha, "foreground": image, **kwargs}
    status = args.pop("status", "corrected")
    with pytest.raises(ToonmatteError, match=phrase) as caught:
        store.save_triple("x", encode_triple(args.pop("image"), args.pop("alpha"), **args), status=status)
    assert "\n" not in str(caught.value)
    assert store.get("x") is None and not list(tmp_path.glob("train/*/*/*"))


def test_bad_split_and_generation_names_are_refused(tmp_path):
    for kwargs in ({"split": "../x"}, {"generation": "a/b"}, {"split": ".hidden"}):
        with pytest.raises(ToonmatteError, match="not allowed"):
            DatasetStore(tmp_path, **kwargs)
    with pytest.raises(ToonmatteError, match="No saved triple"):
        DatasetStore(tmp_path).load_triple("missing")


def _save_paused(root: Path, stem: str, value: int, step: str, marker: Path) -> None:
    """Child process: save, stopping for good at ``step`` (the parent kills it there)."""
    def pause(name: str) -> None:
        if name == step:
            marker.touch()
            time.sleep(120)

    store_module._fault_point = pause
    _save_uniform(DatasetStore(root, generation="g"), stem, value)


def _kill_when(process, marker: Path) -> None:
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert process.is_alive() and time.monotonic() < deadline, "the writer never reached its pause"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.join()


@pytest.mark.parametrize("step", FAULT_STEPS)
def test_writer_killed_mid_save_leaves_old_or_new_triple(tmp_path, step):
    store = DatasetStore(tmp_path, generation="g")
    _save_uniform(store, "item", 10)
    marker = tmp_path / "paused"
    writer = FORK.Process(target=_save_paused, args=(tmp_path, "item", 20, step, marker))
    writer.start()
    _kill_when(writer, marker)
    paths = store.triple_paths("item")
    if step == "renamed-im":  # the crash really left a mix on disk before recovery
        assert _value_of({"im": paths["im"]}) == 20 and _value_of({"gt": paths["gt"]}) == 10
    if step != "history-committed":  # the last step leaves nothing but a previous prediction (none here)
        assert _leftovers(tmp_path)  # something to clean up

    reopened = DatasetStore(tmp_path, generation="g")
    committed = FAULT_STEPS.index(step) >= FAULT_STEPS.index("indexed")
    assert _value_of(reopened.triple_paths("item")) == (20 if committed else 10)
    assert _history_values(reopened, "item") == ([10] if committed else [])
    assert reopened.get("item").versions == (2 if committed else 1)
    assert _leftovers(tmp_path) == []
    _save_uniform(reopened, "item", 30)  # the store stays usable
    assert _history_values(reopened, "item") == ([10, 20] if committed else [10])


def _save_forever(root: Path, stem: str, start: int) -> None:
    store = DatasetStore(root, generation="g")
    value = start
    while True:
        _save_uniform(store, stem, value)
        value = value % 250 + 1


def test_writer_killed_at_random_moments(tmp_path):
    rng = np.random.default_rng(0)
    DatasetStore(tmp_path, generation="g")
    for round_ in range(4):
        writer = FORK.Process(target=_save_forever, args=(tmp_path, "loop", 1 + 60 * round_))
        writer.start()
        time.sleep(float(rng.uniform(0.3, 0.8)))
        os.kill(writer.pid, signal.SIGKILL)
        writer.join()
        store = DatasetStore(tmp_path, generation="g")
        if store.get("loop") is None:
            continue
        _value_of(store.triple_paths("loop"))  # consistent
        history = _history_values(store, "loop")  # each version consistent
        assert store.get("loop").versions == len(history) + 1
        assert _leftovers(tmp_path) == []


def _save_values(root: Path, stem: str, values: list[int]) -> None:
    store = DatasetStore(root, generation="g")
    for value in values:
        _save_uniform(store, stem, value)


def test_concurrent_writers_threads_and_processes_same_stem(tmp_path):
    store = DatasetStore(tmp_path, generation="g")
    thread_values = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    process_values = [[11, 12, 13], [14, 15, 16]]
    workers = [FORK.Process(target=_save_values, args=(tmp_path, "same", v)) for v in process_values]
    workers += [threading.Thread(target=lambda v=v: [_save_uniform(store, "same", x) for x in v])
                for v in thread_values]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert all(w.exitcode == 0 for w in workers if isinstance(w, multiprocessing.process.BaseProcess))
    everything = [x for v in thread_values + process_values for x in v]
    final = _value_of(store.triple_paths("same"))
    assert sorted(_history_values(store, "same") + [final]) == sorted(everything)
    assert store.get("same").versions == len(everything)
    for values in thread_values + process_values:  # each writer's saves stay in its own order
        history = _history_values(store, "same") + [final]
        assert [history.index(x) for x in values] == sorted(history.index(x) for x in values)
    assert _leftovers(tmp_path) == []


def test_concurrent_writers_different_stems(tmp_path):
    store = DatasetStore(tmp_path, generation="g")
    threads = [threading.Thread(target=lambda i=i: [_save_uniform(store, f"s{i}", 10 * i + k) for k in range(3)])
               for i in range(1, 5)]
    process = FORK.Process(target=_save_values, args=(tmp_path, "s9", [90, 91, 92]))
    process.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    process.join()
    for i in (1, 2, 3, 4, 9):
        assert _value_of(store.triple_paths(f"s{i}")) == 10 * i + 2
        assert _history_values(store, f"s{i}") == [10 * i, 10 * i + 1]
    assert store.progress()["corrected"] == 5


def test_resume_state_persists_across_instances(tmp_path):
    first = DatasetStore(tmp_path)
    assert first.get_state("queue", default={"index": 0}) == {"index": 0}
    first.set_state("queue", {"sources": ["a.png", "b.png"], "index": 1})
    first.set_state("queue", {"sources": ["a.png", "b.png"], "index": 2})
    first.close()
    second = DatasetStore(tmp_path, generation="another_day")
    assert second.get_state("queue") == {"sources": ["a.png", "b.png"], "index": 2}
    with pytest.raises(ToonmatteError, match="JSON"):
        second.set_state("bad", object())


def test_progress_items_and_record(tmp_path):
    store = DatasetStore(tmp_path, generation="g")
    assert store.progress() == {status: 0 for status in STATUSES}
    for name in ("a", "b", "c", "d"):
        store.record(name, status="todo", source_path=f"/in/{name}.png")
    store.record("b", status="predicted", model="toonout", model_version="1")
    store.record("c", status="skipped")
    _save_uniform(store, "d", 3)
    assert store.progress() == {"todo": 1, "predicted": 1, "corrected": 1, "skipped": 1, "reviewed": 0, "returned": 0}
    assert [r.stem for r in store.items()] == ["d", "c", "b", "a"]  # newest first
    assert [r.stem for r in store.items("todo")] == ["a"]
    b = store.get("b")
    assert (b.status, b.model, b.source_path, b.versions) == ("predicted", "toonout", "/in/b.png", 0)
    assert store.get("d").versions == 1 and store.get("d").source_path == "/in/d.png"
    with pytest.raises(ToonmatteError, match="Unknown status"):
        store.record("a", status="finished")


def test_an_item_keeps_its_place_and_stem_for_deduplicates(tmp_path):
    old = DatasetStore(tmp_path, generation="day1")
    _save_uniform(old, "item", 1)
    new = DatasetStore(tmp_path, generation="day2")
    _save_uniform(new, "item", 2)
    assert not (tmp_path / "train" / "day2").exists()
    assert _value_of(new.triple_paths("item")) == 2 and _history_values(new, "item") == [1]

    new.record("pic", status="todo", source_hash="aaaa1111")
    assert new.stem_for("/x/pic.png", "aaaa1111") == "pic"
    assert new.stem_for("/y/pic.png", "bbbb2222") == "pic-bbbb2222"
    assert new.stem_for("/y/other.png", "aaaa1111") == "pic"  # same bytes, same item
    assert new.stem_for("fresh.png", "cccc") == "fresh"


# ------------------------------------------------------- failures: all done or not done at all

def _dataset_values(store: DatasetStore) -> dict[str, int]:
    """stem -> the value each triple's im and gt hold, after checking that every triple is whole (its
    ``an`` alpha is its gt), that the disk and the index agree, and that no save left anything behind."""
    items = list_items(store.root)
    assert all(item.complete for item in items), [item.name for item in items if not item.complete]
    values = {item.stem: _value_of({"im": item.im, "gt": item.gt}) for item in items}
    assert all(np.array_equal(read_png(item.an)[..., 3], read_png(item.gt)) for item in items)
    indexed = {record.stem: record for record in store.items()}
    assert set(indexed) == set(values)
    for item in items:
        assert (indexed[item.stem].split, indexed[item.stem].generation) == (item.split, item.generation)
    assert _leftovers(store.root) == []
    return values


def _one_sentence(message: str, *needles: str) -> None:
    assert "\n" not in message and message.endswith(".") and message.count(". ") == 0, message
    assert "Errno" not in message and "/" not in message, message  # no raw OS error, no path
    for needle in needles:
        assert needle in message, message


_HOLD_INDEX = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("holding", flush=True)
sys.stdin.read()
"""


def test_a_save_while_another_program_holds_the_index_changes_nothing_and_a_retry_is_the_same_item(tmp_path):
    from annotate.api import save_file

    store = DatasetStore(tmp_path / "data", generation="g", busy_timeout=0.3)
    _save_uniform(store, "kept", 10)
    source, mask = tmp_path / "locked.png", tmp_path / "mask.png"
    cv2.imwrite(str(source), np.full((12, 16, 3), 40, np.uint8))
    cv2.imwrite(str(mask), np.full((12, 16), 40, np.uint8))  # one value per triple, as _value_of reads it
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_INDEX, str(store.root / ".toonmatte" / "index.sqlite")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(WriteError) as error:
            save_file(store, source, mask)
        _one_sentence(str(error.value), "locked by another program", "nothing was saved")
        with pytest.raises(WriteError, match="locked by another program"):
            _save_uniform(store, "kept", 11)  # a new version of an existing item: the old one stays
        assert _dataset_values(store) == {"kept": 10}
    finally:
        holder.communicate("")
    stem, _ = save_file(store, source, mask)
    assert stem == "locked" and save_file(store, source, mask)[0] == "locked"  # the same bytes are the same item
    assert store.get("locked").versions == 2 and len(store.history("locked")) == 1
    assert set(_dataset_values(store)) == {"kept", "locked"}


def test_a_full_index_names_the_real_cause_and_rolls_the_files_back(tmp_path):
    """SQLite's own "database or disk is full", reached by capping the index's size in pages."""
    store = DatasetStore(tmp_path, generation="g")
    pages = store._index.query("PRAGMA page_count")[0][0]
    store._index.query(f"PRAGMA max_page_count = {pages}")
    acknowledged = {}
    with pytest.raises(WriteError) as error:
        for i in range(200):  # each new row takes room until a page is needed
            _save_uniform(store, f"item{i:03d}-" + "x" * 100, i % 250)
            acknowledged[f"item{i:03d}-" + "x" * 100] = i % 250
    _one_sentence(str(error.value), "disk holding the dataset is full", "nothing was saved")
    assert "rollback" not in str(error.value)
    assert acknowledged and _dataset_values(store) == acknowledged


def test_no_space_while_writing_the_temps_leaves_no_partial_file(tmp_path, monkeypatch):
    store = DatasetStore(tmp_path, generation="g")
    _save_uniform(store, "item", 10)
    real_write, calls = os.write, []

    def write_until_full(fd: int, data) -> int:
        calls.append(len(data))
        if len(calls) == 2:  # the gt: half of it fits, then the disk is full
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write_until_full)
    with pytest.raises(WriteError) as error:
        _save_uniform(store, "item", 20)
    monkeypatch.setattr(os, "write", real_write)
    _one_sentence(str(error.value), "disk is full", "free some space")
    assert _dataset_values(store) == {"item": 10} and store.history("item") == []


def test_a_really_full_disk_keeps_exactly_the_acknowledged_saves(tmp_path, mounts):
    disk = mounts.tmpfs(tmp_path / "disk", "768k")
    store = DatasetStore(disk, generation="g")
    rng = np.random.default_rng(0)
    acknowledged: dict[str, int] = {}
    failure = None
    for i in range(60):  # noise does not compress: about 50 KB per triple, so the disk fills up
        value = i + 1
        image = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
        image[0, 0] = value
        try:
            store.save_triple(f"noise{i:02d}", encode_triple(np.full((64, 128, 3), value, np.uint8),
                                                             np.full((64, 128), value, np.uint8), image))
        except WriteError as error:
            failure = str(error)
            break
        acknowledged[f"noise{i:02d}"] = value
    assert failure is not None, "the disk never filled up"
    _one_sentence(failure, "full")
    assert _dataset_values(store) == acknowledged


def test_a_read_only_root_is_refused_on_open_in_one_sentence(tmp_path, mounts):
    with DatasetStore(tmp_path / "data", generation="g") as store:
        _save_uniform(store, "item", 10)
    view = mounts.read_only_view(tmp_path / "data", tmp_path / "view")
    with pytest.raises(WriteError) as error:
        DatasetStore(view, generation="g")
    message = str(error.value)
    assert "read-only" in message and str(view) in message and "Errno" not in message  # the operator's folder, named
    assert _value_of(DatasetStore(tmp_path / "data").triple_paths("item")) == 10


@pytest.mark.parametrize("code, phrase", [(errno.EROFS, "read-only"), (errno.EACCES, "permission was denied"),
                                          (errno.ENOSPC, "disk is full")])
def test_a_root_that_stops_taking_writes_gives_one_sentence_and_keeps_the_item(tmp_path, monkeypatch, code, phrase):
    """The disk turns read-only (or loses permission, or fills) while the studio runs."""
    store = DatasetStore(tmp_path, generation="g")
    _save_uniform(store, "item", 10)
    real_open = os.open

    def refuse_writes(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_writes)
    with pytest.raises(WriteError) as error:
        _save_uniform(store, "item", 20)
    with pytest.raises(WriteError):
        with store.naming():
            pass
    monkeypatch.setattr(os, "open", real_open)
    _one_sentence(str(error.value), phrase)
    assert _dataset_values(store) == {"item": 10}


def test_a_file_in_the_way_of_a_folder_is_one_sentence(tmp_path):
    store = DatasetStore(tmp_path, split="train", generation="g")
    (tmp_path / "train" / "g").mkdir(parents=True)
    (tmp_path / "train" / "g" / "gt").write_text("not a folder")
    with pytest.raises(WriteError) as error:
        _save_uniform(store, "item", 10)
    _one_sentence(str(error.value), "a file stands where a folder should be")
    assert store.get("item") is None and _leftovers(tmp_path) == []
