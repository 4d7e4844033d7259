"""The split command: ToonOut's deterministic 80/10/10 shuffle, moving whole triples."""
from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from toonmatte.cli import main
from toonmatte.dataset import KINDS, SPLITS, DatasetStore, encode_triple, journal, list_items
from toonmatte.dataset import store as store_module
from toonmatte.dataset.journal import unfinished_moves


def write_item(root: Path, folder: str, stem: str, tag: int, kinds: tuple[str, ...] = KINDS) -> None:
    """A tiny triple whose three files all carry ``tag`` so that they can be matched up afterwards."""
    for kind in kinds:
        path = root / folder / kind / f"{stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        channels = {"im": 3, "gt": 1, "an": 4}[kind]
        pixels = np.full((4, 4, channels), tag, np.uint8)
        Image.fromarray(pixels[..., 0] if channels == 1 else pixels).save(path)


def tag_of(path: Path) -> int:
    return int(np.asarray(Image.open(path)).reshape(-1)[0])


def make_dataset(root: Path, n: int = 10) -> dict[str, int]:
    """``n`` unsplit items over two generations plus one already in train; returns stem -> tag."""
    tags = {}
    for i in range(n):
        stem = f"img{i:03d}"
        folder = "train/gen_b" if i == 0 else ("gen_a" if i % 2 else "gen_b")
        write_item(root, folder, stem, tag=i + 1)
        tags[stem] = i + 1
    return tags


def snapshot(root: Path) -> list[str]:
    """The dataset's files and history (not the store's own index, locks and journals in ``.toonmatte``)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.relative_to(root).parts[0] != ".toonmatte")


def test_split_moves_whole_triples_into_generation_folders(tmp_path, capsys):
    tags = make_dataset(tmp_path)
    hidden = tmp_path / ".history" / "gen_a" / "gt" / "img001.png"
    hidden.parent.mkdir(parents=True)
    hidden.write_bytes(b"old version")
    assert main(["split", str(tmp_path)]) == 0
    assert "10 items: train 8, val 1, test 1" in capsys.readouterr().out

    items = list_items(tmp_path)
    assert len(items) == 10 and all(item.complete and item.split in SPLITS for item in items)
    for item in items:
        assert item.generation == ("gen_a" if int(item.stem[3:]) % 2 else "gen_b")
        assert {tag_of(item.path(kind)) for kind in KINDS} == {tags[item.stem]}
    assert not (tmp_path / "gen_a").exists() and not (tmp_path / "gen_b").exists()
    assert hidden.read_bytes() == b"old version"  # hidden folders are left alone
    assert unfinished_moves(tmp_path) == 0


def test_split_is_deterministic_and_follows_the_seeded_shuffle(tmp_path):
    layouts = []
    for name in ("a", "b"):
        make_dataset(tmp_path / name)
        assert main(["split", str(tmp_path / name)]) == 0
        layouts.append(snapshot(tmp_path / name))
    assert layouts[0] == layouts[1]

    stems = sorted(f"img{i:03d}" for i in range(10))
    random.Random(0).shuffle(stems)
    expected = {stem: "train" for stem in stems[:8]} | {stems[8]: "val", stems[9]: "test"}
    assert {item.stem: item.split for item in list_items(tmp_path / "a")} == expected

    assert main(["split", str(tmp_path / "a")]) == 0  # already split: nothing moves
    assert snapshot(tmp_path / "a") == layouts[0]


def test_seed_and_ratios_change_the_plan(tmp_path):
    make_dataset(tmp_path)
    assert main(["split", str(tmp_path), "--seed", "3", "--ratios", "0.5,0.2,0.3"]) == 0
    counts = {split: sum(item.split == split for item in list_items(tmp_path)) for split in SPLITS}
    assert counts == {"train": 5, "val": 2, "test": 3}


def test_dry_run_moves_nothing(tmp_path, capsys):
    make_dataset(tmp_path)
    before = snapshot(tmp_path)
    assert main(["split", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Dry run" in out and "gen_a/img001 -> " in out
    assert snapshot(tmp_path) == before


def test_incomplete_triples_are_refused_and_named(tmp_path, capsys):
    make_dataset(tmp_path)
    write_item(tmp_path, "gen_a", "lonely", tag=99, kinds=("im", "an"))
    before = snapshot(tmp_path)
    assert main(["split", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "gen_a/lonely (missing gt)" in err and len(err.strip().splitlines()) == 1
    assert snapshot(tmp_path) == before


def test_items_that_would_collide_are_refused(tmp_path, capsys):
    write_item(tmp_path, "train/gen", "same", tag=1)
    write_item(tmp_path, "test/gen", "same", tag=2)
    before = snapshot(tmp_path)
    assert main(["split", str(tmp_path)]) == 1
    assert "test/gen/same and train/gen/same" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_same_stem_in_two_generations_is_two_items(tmp_path):
    write_item(tmp_path, "gen_a", "same", tag=1)
    write_item(tmp_path, "gen_b", "same", tag=2)
    assert main(["split", str(tmp_path)]) == 0
    items = list_items(tmp_path)
    assert sorted((item.generation, tag_of(item.gt)) for item in items) == [("gen_a", 1), ("gen_b", 2)]


def test_an_interrupted_split_is_finished_by_the_next_run(tmp_path, monkeypatch, capsys):
    """The split process dies right after the first file of a move was renamed."""
    tags = make_dataset(tmp_path)
    renames: list[tuple[str, str]] = []
    real_rename = os.rename

    def rename_then_crash(source, destination):
        if renames:
            raise KeyboardInterrupt  # stands in for the kill: nothing below this frame runs
        renames.append((source, destination))
        real_rename(source, destination)

    monkeypatch.setattr(journal.os, "rename", rename_then_crash)
    assert main(["split", str(tmp_path)]) == 130  # the CLI's exit status for an interruption
    monkeypatch.setattr(journal.os, "rename", real_rename)
    assert unfinished_moves(tmp_path) == 1 and len(renames) == 1
    assert any(not item.complete for item in list_items(tmp_path))  # a triple is apart on disk

    assert main(["split", str(tmp_path), "--dry-run"]) == 0  # reports, touches nothing
    assert "1 interrupted moves" in capsys.readouterr().out and unfinished_moves(tmp_path) == 1
    assert main(["split", str(tmp_path)]) == 0
    items = list_items(tmp_path)
    assert len(items) == 10 and all(item.complete and item.split in SPLITS for item in items)
    assert all({tag_of(item.path(kind)) for kind in KINDS} == {tags[item.stem]} for item in items)
    assert unfinished_moves(tmp_path) == 0


@pytest.mark.parametrize("ratios", ["0.8,0.1", "0.8,0.3,0.1", "a,b,c", "1.2,-0.1,-0.1"])
def test_bad_ratios_are_rejected(tmp_path, ratios):
    with pytest.raises(SystemExit) as exit_info:
        main(["split", str(tmp_path), "--ratios", ratios])
    assert exit_info.value.code == 2


def test_empty_or_missing_root(tmp_path, capsys):
    assert main(["split", str(tmp_path)]) == 1
    assert main(["split", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_split_keeps_the_studio_index_and_history_in_step(tmp_path):
    rgb, alpha = np.full((8, 8, 3), 90, np.uint8), np.full((8, 8), 255, np.uint8)
    with DatasetStore(tmp_path, split="train", generation="g1") as store:
        for i in range(10):
            store.save_triple(f"s{i}", encode_triple(rgb, alpha // 2, rgb))
            store.save_triple(f"s{i}", encode_triple(rgb, alpha, rgb))  # one old version in history
    assert main(["split", str(tmp_path)]) == 0
    moved = {item.stem: item for item in list_items(tmp_path) if item.split != "train"}
    assert len(moved) == 2
    assert all(not (tmp_path / "train" / "g1" / "gt" / f"{stem}.png").exists() for stem in moved)

    with DatasetStore(tmp_path, split="train", generation="g1") as store:
        for stem, item in moved.items():
            assert store.get(stem).split == item.split
            assert store.triple_paths(stem)["gt"] == item.gt.resolve()
            assert [version.parents[2].name for version in store.history(stem)] == [item.split]
            store.save_triple(stem, encode_triple(rgb, alpha // 3, rgb))  # re-saving lands where the item now is
            assert len(store.history(stem)) == 2
    assert not (tmp_path / ".history" / "train" / "g1" / next(iter(moved))).exists()
    before = snapshot(tmp_path)
    assert main(["split", str(tmp_path)]) == 0  # no duplicate appeared, so nothing is left to move
    assert snapshot(tmp_path) == before


def test_split_finishes_an_interrupted_studio_save_first(tmp_path, monkeypatch):
    rgb = np.full((8, 8, 3), 90, np.uint8)
    with DatasetStore(tmp_path, split="train", generation="g1") as store:
        for i in range(10):
            store.save_triple(f"s{i}", encode_triple(rgb, np.full((8, 8), 10, np.uint8), rgb))

        def crash(step: str) -> None:
            if step == "renamed-im":
                raise KeyboardInterrupt

        monkeypatch.setattr(store_module, "_fault_point", crash)
        with pytest.raises(KeyboardInterrupt):
            store.save_triple("s3", encode_triple(rgb, np.full((8, 8), 20, np.uint8), rgb))
        monkeypatch.setattr(store_module, "_fault_point", lambda step: None)
    assert main(["split", str(tmp_path)]) == 0
    with DatasetStore(tmp_path) as store:
        im, gt, an = store.load_triple("s3")
        assert (gt == 20).all() and (an[..., 3] == 20).all() and store.get("s3").versions == 2
        assert {item.stem: item.split for item in list_items(tmp_path)} == {
            record.stem: record.split for record in store.items()}
    assert not list(tmp_path.rglob("*.tmp"))


def _studio_saves(root: Path, count: int) -> None:
    """Another process: the studio saving new versions of its items while a split runs."""
    rgb = np.full((8, 8, 3), 90, np.uint8)
    with DatasetStore(root, split="train", generation="g1") as store:
        (root / "studio-started").touch()
        for round_ in range(count):
            for i in range(12):
                store.save_triple(f"s{i}", encode_triple(rgb, np.full((8, 8), 20 + round_, np.uint8), rgb))


def test_split_and_the_studio_at_once_keep_the_dataset_consistent(tmp_path):
    import multiprocessing

    rgb = np.full((8, 8, 3), 90, np.uint8)
    with DatasetStore(tmp_path, split="train", generation="g1") as store:
        for i in range(12):
            store.save_triple(f"s{i}", encode_triple(rgb, np.full((8, 8), 10, np.uint8), rgb))
    studio = multiprocessing.get_context("spawn").Process(target=_studio_saves, args=(tmp_path, 6))
    studio.start()
    while not (tmp_path / "studio-started").exists():
        assert studio.is_alive()
        time.sleep(0.01)
    splits = 0
    while studio.is_alive():  # reshuffle with another seed each time, so items keep moving under the saves
        assert main(["split", str(tmp_path), "--seed", str(splits)]) == 0
        splits += 1
    studio.join(120)
    assert splits >= 2
    assert studio.exitcode == 0
    items = list_items(tmp_path)
    assert len(items) == 12 and all(item.complete for item in items)
    with DatasetStore(tmp_path) as store:
        assert {item.stem: item.split for item in items} == {record.stem: record.split for record in store.items()}
        for item in items:
            im, gt, an = store.load_triple(item.stem)
            assert (gt == 25).all() and np.array_equal(an[..., 3], gt)  # the studio's last save, wherever it is now
            assert store.get(item.stem).versions == 7 == len(store.history(item.stem)) + 1
    assert not list(tmp_path.rglob("*.tmp")) and unfinished_moves(tmp_path) == 0
