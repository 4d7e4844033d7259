"""The studio's work queue: loading folders, uploads and zips (safely), navigation, resume, prefetch."""
from __future__ import annotations

import contextvars
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotate.queue import (
    Budget,
    Prediction,
    QueueItem,
    WorkQueue,
    extract_zip,
    folder_images,
    import_uploads,
    prune_uploads,
    skip_unreadable,
)
from conftest import draw_toon
from toonmatte.dataset import DatasetStore, encode_triple
from toonmatte.errors import BadImageError
from toonmatte.imaging.imageio import load_image


def roomy() -> Budget:
    """A budget no test here reaches."""
    return Budget(bytes=1 << 30, files=1000)

def png_bytes(seed: int, size: int = 32) -> bytes:
    rgb, _ = draw_toon(size, size, seed=seed)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def write_images(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img{i}.png"
        path.write_bytes(png_bytes(i))
        paths.append(path)
    return paths


class FakePredictor:
    """Thresholds the image; records which stems it was called for and on which thread."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.gate = gate
        self.lock = threading.Lock()

    def __call__(self, item: QueueItem) -> Prediction:
        with self.lock:
            self.calls.append((item.stem, threading.current_thread().name))
        if self.gate is not None:
            self.gate.wait(10)
        rgb = load_image(item.path).rgb
        alpha = np.where(rgb.astype(int).sum(axis=2) != 3 * 128, 255, 0).astype(np.uint8)
        return Prediction(item.stem, Path(item.path), rgb, alpha, "fake", "1", "hash")

    def stems(self) -> list[str]:
        with self.lock:
            return [stem for stem, _ in self.calls]


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    with DatasetStore(tmp_path / "dataset", generation="g1") as s:
        yield s


def test_folder_listing_and_missing_folder(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "in" / "sub", 2) + write_images(tmp_path / "in", 1)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    found = folder_images(tmp_path / "in")
    assert sorted(found.paths) == sorted(paths) and not found.skipped
    missing = folder_images(tmp_path / "nope")
    assert not missing.paths and "not a folder" in missing.skipped[0]


def test_zip_extraction_skips_traversal_and_links(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("good/a.png", png_bytes(0))
        bundle.writestr("b.png", png_bytes(1))
        bundle.writestr("../escape.png", png_bytes(2))
        bundle.writestr("../../etc/evil.png", png_bytes(3))
        bundle.writestr("/abs.png", png_bytes(4))
        bundle.writestr("ok/..\\..\\win.png", png_bytes(5))
        bundle.writestr("__MACOSX/._b.png", b"resource fork")
        bundle.writestr("readme.txt", "text")
        link = zipfile.ZipInfo("link.png")
        link.external_attr = (0o120777 << 16)  # a symbolic link entry
        bundle.writestr(link, "/etc/passwd")
    dest = tmp_path / "work" / "x"
    result = extract_zip(archive, dest, roomy())
    assert sorted(p.relative_to(dest).as_posix() for p in result.paths) == ["b.png", "good/a.png"]
    assert len(result.skipped) == 5, result.skipped  # 4 unsafe names + 1 link, each reported
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["evil.zip", "work/x/b.png", "work/x/good/a.png"]
    assert load_image(dest / "good" / "a.png").rgb.shape == (32, 32, 3)


def test_bad_zip_is_reported(tmp_path: Path) -> None:
    fake = tmp_path / "broken.zip"
    fake.write_bytes(b"PK\x03\x04 not really a zip")
    result = import_uploads([fake], tmp_path / "work", roomy())
    assert not result.paths and "not a readable zip" in result.skipped[0]


def test_import_uploads_mixes_images_and_zips(tmp_path: Path) -> None:
    images = write_images(tmp_path / "up", 2)
    archive = tmp_path / "up" / "batch.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("z1.png", png_bytes(7))
    (tmp_path / "up" / "doc.pdf").write_bytes(b"%PDF")
    result = import_uploads([*images, archive, tmp_path / "up" / "doc.pdf"], tmp_path / "work", roomy())
    assert [p.name for p in result.paths] == ["img0.png", "img1.png", "z1.png"]
    assert all(p.is_relative_to(tmp_path / "work") for p in result.paths)
    assert len(result.skipped) == 1 and "doc.pdf" in result.skipped[0]
    again = import_uploads(images[:1], tmp_path / "work", roomy())  # same bytes -> same work file
    assert again.paths == result.paths[:1]


def test_navigation_skip_progress_and_resume(store: DatasetStore, tmp_path: Path) -> None:
    paths = write_images(tmp_path / "in", 4)
    predictor = FakePredictor()
    queue = WorkQueue.from_paths(store, predictor, paths, source="in")
    try:
        assert len(queue) == 4 and [i.stem for i in queue.items] == ["img0", "img1", "img2", "img3"]
        assert store.get("img2").status == "todo"
        first = queue.current()
        assert first.stem == "img0" and store.get("img0").status == "predicted"
        assert queue.previous().stem == "img0"  # clamped at the start
        queue.next()
        assert queue.skip().stem == "img2"
        assert store.get("img1").status == "skipped"
        rgb, alpha = first.image, first.alpha
        store.save_triple("img0", encode_triple(rgb, alpha, rgb), status="corrected")
        assert queue.progress() == (1, 4)
        assert "Image 3 of 4" in queue.describe() and "1 of 4 corrected" in queue.describe()
    finally:
        queue.close()

    resumed = WorkQueue.resume(store, FakePredictor())
    try:
        assert resumed is not None and resumed.index == 2 and resumed.item.stem == "img2"
        assert [i.path for i in resumed.items] == paths
        assert resumed.current().stem == "img2"
        assert resumed.skip().stem == "img3" and resumed.at_end()
        assert resumed.next().stem == "img3"  # clamped at the end
    finally:
        resumed.close()


def test_same_name_different_sources_get_distinct_stems(store: DatasetStore, tmp_path: Path) -> None:
    a = write_images(tmp_path / "a", 1)[0]
    b = tmp_path / "b" / "img0.png"
    b.parent.mkdir()
    b.write_bytes(png_bytes(9))
    duplicate = tmp_path / "c" / "copy.png"
    duplicate.parent.mkdir()
    duplicate.write_bytes(a.read_bytes())
    queue = WorkQueue.from_paths(store, FakePredictor(), [a, b, duplicate])
    try:
        stems = [item.stem for item in queue.items]
        assert len(stems) == 2 and stems[0] == "img0" and stems[1] != "img0"  # identical copy queued once
    finally:
        queue.close()


def test_next_image_is_predicted_in_background(store: DatasetStore, tmp_path: Path) -> None:
    paths = write_images(tmp_path / "in", 3)
    predictor = FakePredictor()
    queue = WorkQueue.from_paths(store, predictor, paths)
    try:
        queue.current()
        queue.wait_prefetch(timeout=30)
        assert queue.is_prefetched(1)
        assert predictor.stems() == ["img0", "img1"]
        assert all(name.startswith("toonmatte-prefetch") for _, name in predictor.calls)
        queue.next()
        assert queue.is_prefetched(1)  # already done before current() is asked
        assert queue.current().stem == "img1"
        queue.wait_prefetch(timeout=30)
        assert predictor.stems() == ["img0", "img1", "img2"]  # nothing predicted twice
    finally:
        queue.close()


def test_predictions_run_in_the_context_of_the_request_that_asked_for_them(store: DatasetStore, tmp_path: Path) -> None:
    """On ZeroGPU, spaces finds the visitor's request in the context, so a prefetch's GPU time is theirs."""
    request = contextvars.ContextVar("request", default=None)
    seen: list[str | None] = []

    def predictor(item: QueueItem) -> Prediction:
        seen.append(request.get())
        return FakePredictor()(item)

    queue = WorkQueue.from_paths(store, predictor, write_images(tmp_path / "in", 2))
    try:
        request.set("alice's request")
        queue.current()
        queue.wait_prefetch(timeout=30)
        assert seen == ["alice's request", "alice's request"]
    finally:
        queue.close()


def test_current_waits_for_a_running_prefetch(store: DatasetStore, tmp_path: Path) -> None:
    gate = threading.Event()
    predictor = FakePredictor(gate)
    queue = WorkQueue.from_paths(store, predictor, write_images(tmp_path / "in", 2))
    try:
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(queue.current().stem))
        reader.start()
        reader.join(0.2)
        assert reader.is_alive() and not result  # blocked on the gated prediction
        gate.set()
        reader.join(30)
        assert result == ["img0"]
    finally:
        gate.set()
        queue.close()


def test_unreadable_files_are_skipped_with_a_message(store: DatasetStore, tmp_path: Path) -> None:
    paths = write_images(tmp_path / "in", 3)
    paths[1].write_bytes(b"\x89PNG\r\n\x1a\n truncated")

    def predictor(item: QueueItem) -> Prediction:
        return FakePredictor()(item)

    queue = WorkQueue.from_paths(store, predictor, paths)
    try:
        queue.next()
        prediction, messages = skip_unreadable(queue, BadImageError)
        assert prediction is not None and prediction.stem == "img2"
        assert len(messages) == 1 and "img1" in messages[0]
        assert store.get("img1").status == "skipped"
        queue.previous()  # the queue is still usable: the bad item fails again, cleanly
        with pytest.raises(BadImageError):
            queue.current()
    finally:
        queue.close()


def test_a_member_name_too_long_for_the_file_system_is_skipped_and_the_rest_load(tmp_path: Path) -> None:
    archive = tmp_path / "long.zip"
    long_name = "characters/" + "very_long_name_" * 20 + ".png"  # a 300-byte file name: over 255
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("a.png", png_bytes(0))
        bundle.writestr(long_name, png_bytes(1))
        bundle.writestr("z.png", png_bytes(2))
    result = import_uploads([archive], tmp_path / "work", roomy())
    assert sorted(p.name for p in result.paths) == ["a.png", "z.png"]
    assert len(result.skipped) == 1 and "name too long" in result.skipped[0]
    assert str(tmp_path) not in result.skipped[0] and len(result.skipped[0]) < 200


def test_an_upload_that_cannot_be_copied_is_one_sentence_and_leaves_no_partial_file(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    import errno
    import shutil

    source = tmp_path / "pic.png"
    source.write_bytes(png_bytes(0))

    def full_disk(src, dst, **kwargs):
        Path(dst).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    result = import_uploads([source], tmp_path / "work", roomy())
    assert not result.paths and result.skipped == [
        "The upload pic.png could not be written: the disk is full; free some space and try again."]
    assert not [p for p in (tmp_path / "work").rglob("*") if p.is_file()]


def test_uploads_stop_at_the_persons_budget_even_inside_a_zip_bomb(tmp_path: Path) -> None:
    """A 1 MB zip of one 1 GiB file of zeros stops at the budget, and nothing of it stays."""
    bomb = tmp_path / "zeros.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bundle:
        with bundle.open("zeros.png", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(64):  # 64 MiB here, enough to pass a 4 MiB budget many times over
                member.write(block)
    assert bomb.stat().st_size < 1 << 20
    work = tmp_path / "work"
    result = import_uploads([bomb], work, Budget.left_in(work, 4 << 20, 100))
    assert not result.paths and "over your uploads limit" in result.skipped[0]
    assert not [p for p in work.rglob("*") if p.is_file()]

    images = []
    for i in range(3):
        images.append(tmp_path / f"pic{i}.png")
        images[-1].write_bytes(png_bytes(i))
    result = import_uploads(images, work, Budget.left_in(work, 1 << 20, 2))  # room for two files
    assert len(result.paths) == 2 and len(result.skipped) == 1 and "pic2.png" in result.skipped[0]
    left = Budget.left_in(work, 1 << 20, 2)
    assert left.files == 0 and left.bytes == (1 << 20) - sum(p.stat().st_size for p in result.paths)


def test_old_upload_folders_no_longer_queued_are_pruned(tmp_path: Path) -> None:
    import os

    work = tmp_path / "work"
    images = []
    for i in range(2):
        images.append(tmp_path / f"pic{i}.png")
        images[-1].write_bytes(png_bytes(i))
    queued, stale = import_uploads(images, work, roomy()).paths
    other_person = work / "bob-1234abcd"
    other_person.mkdir()
    old = 1_000_000.0
    for folder in (queued.parent, stale.parent, other_person):
        os.utime(folder, (old, old))
    assert prune_uploads(work, [queued], max_age=3600) == 1
    assert queued.exists() and not stale.exists() and other_person.exists()


def test_queue_items_keep_their_source_hash_and_a_queue_saved_without_them_still_resumes(
        store: DatasetStore, tmp_path: Path) -> None:
    from toonmatte.dataset import hash_file

    paths = write_images(tmp_path / "in", 2)
    queue = WorkQueue.from_paths(store, FakePredictor(), paths)
    queue.close()
    resumed = WorkQueue.resume(store, FakePredictor())
    try:
        assert [item.source_hash for item in resumed.items] == [hash_file(path) for path in paths]
        assert [store.get(item.stem).source_hash for item in resumed.items] == [hash_file(path) for path in paths]
    finally:
        resumed.close()
    store.set_state("queue", {"items": [[item.stem, str(item.path)] for item in resumed.items], "index": 1})
    old = WorkQueue.resume(store, FakePredictor())
    try:
        assert old.index == 1 and old.items[1].source_hash is None and old.items[1].digest() == hash_file(paths[1])
    finally:
        old.close()
