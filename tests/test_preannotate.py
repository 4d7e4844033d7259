"""Pre-annotation: predict --for-studio writes what the studio opens without running the model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotate.access import Access
from annotate.engine import Engine
from annotate.studio import Studio
from conftest import draw_toon
from toonmatte.cli import main
from toonmatte.dataset import DatasetStore, hash_file
from toonmatte.errors import ToonmatteError
from toonmatte.preannotate import load_predictions


def test_for_studio_records_hash_version_and_uncertainty_and_the_studio_uses_it(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(draw_toon(64, 64, seed=i)[0]).save(folder / f"shot{i}.png")
    out = tmp_path / "pre"
    assert main(["predict", str(folder), "--out", str(out), "--model", "fallback", "--for-studio"]) == 0
    lines = [json.loads(line) for line in (out / "studio-0.jsonl").read_text().splitlines()]
    assert sorted(line["source"] for line in lines) == ["shot0.png", "shot1.png"]
    assert all(line["model"] == "fallback" and 0 <= line["soft"] <= 1 for line in lines)
    stored = load_predictions(out)
    assert set(stored) == {hash_file(folder / "shot0.png"), hash_file(folder / "shot1.png")}

    marked = np.zeros((64, 64), np.uint8)  # a matte the model would never make: proves the file is what opens
    marked[8:40, 8:40] = 255
    Image.fromarray(marked).save(stored[hash_file(folder / "shot0.png")].alpha)
    engine = Engine(model="fallback").start()
    studio = Studio(DatasetStore(tmp_path / "dataset"), engine, access=Access(), stored=stored)
    try:
        step = studio.desk().load(None, str(folder))
        assert step.item.stem == "shot0" and np.array_equal(step.item.predicted, marked)
        assert "pre-annotated at" in studio.desk().progress_line(step.item)
        assert step.item.uncertainty is not None
    finally:
        studio.close()

    for line in lines:  # another model version: the stored mattes no longer count
        line["version"] = "older"
    (out / "studio-0.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    studio = Studio(DatasetStore(tmp_path / "dataset2"), engine, access=Access(), stored=load_predictions(out))
    try:
        item = studio.desk().load(None, str(folder)).item
        assert not np.array_equal(item.predicted, marked) and item.stored is None
        assert "prediction by fallback" in studio.desk().progress_line(item)
    finally:
        studio.close()


def test_a_cut_off_last_line_is_ignored_and_a_damaged_one_is_named(tmp_path: Path) -> None:
    good = {"sha256": "ab", "source": "a.png", "alpha": "a.png", "model": "m", "version": "v", "soft": 0.1,
            "fragments": 0.0, "made_at": "2026-12-03T00:00:00+00:00"}
    (tmp_path / "studio-0.jsonl").write_text(json.dumps(good) + "\n" + '{"sha256": "cd", "sou')
    assert list(load_predictions(tmp_path)) == ["ab"]
    (tmp_path / "studio-1.jsonl").write_text("not json\n" + json.dumps(good) + "\n")
    with pytest.raises(ToonmatteError, match="Line 1 of .*studio-1.jsonl is damaged"):
        load_predictions(tmp_path)
    with pytest.raises(ToonmatteError, match="does not exist"):
        load_predictions(tmp_path / "missing")


def test_the_queue_orders_by_uncertainty_name_or_upload_and_leaves_out_sure_images(tmp_path: Path) -> None:
    import cv2

    folder = tmp_path / "batch"
    folder.mkdir()
    names = ["c_sure.png", "a_unsure.png", "b_look.png", "d_unscored.png"]
    for i, name in enumerate(names):
        Image.fromarray(draw_toon(64, 64, seed=i)[0]).save(folder / name)
    out = tmp_path / "pre"
    assert main(["predict", *[str(folder / name) for name in names[:3]], "--out", str(out), "--model", "fallback",
                 "--for-studio"]) == 0
    disc = np.zeros((64, 64), np.uint8)
    cv2.circle(disc, (32, 32), 20, 255, -1)
    noisy = disc.copy()
    noisy[np.random.default_rng(0).random(disc.shape) < 0.3] = 128  # soft everywhere: likely wrong
    islands = disc.copy()
    islands[2:5, 2:5] = islands[58:61, 2:5] = 255  # stray islands: look
    stored = load_predictions(out)
    for name, alpha in (("c_sure", disc), ("a_unsure", noisy), ("b_look", islands)):
        Image.fromarray(alpha).save(out / f"{name}.png")
    from toonmatte.evaluation.uncertainty import uncertainty
    from toonmatte.preannotate import StoredPrediction

    stored = {digest: StoredPrediction(hit.alpha, hit.model, hit.version,
                                       uncertainty(np.asarray(Image.open(hit.alpha))),
                                       hit.made_at) for digest, hit in stored.items()}
    studio = Studio(DatasetStore(tmp_path / "dataset"), Engine(model="fallback").start(),
                    access=Access(), stored=stored)
    try:
        desk = studio.desk()
        desk.load([str(folder / name) for name in names], None)
        loaded = [item.stem for item in desk.queue.items]
        step = desk.order("most unsure first")
        assert [item.stem for item in desk.queue.items][:3] == ["a_unsure", "b_look", "c_sure"]
        assert desk.queue.items[-1].stem == "d_unscored" and "1 have no score yet" in step.info
        desk.order("name")
        assert [item.stem for item in desk.queue.items] == sorted(loaded)
        desk.order("upload order")
        assert [item.stem for item in desk.queue.items] == loaded
        step = desk.order("most unsure first", leave_out_sure=True, current=step.item)
        assert "c_sure" not in [item.stem for item in desk.queue.items] and "leaving out 1" in step.info
        with pytest.raises(ToonmatteError, match="Unknown order"):
            desk.order("size")
    finally:
        studio.close()
    resumed = Studio(DatasetStore(tmp_path / "dataset"), Engine(model="fallback").start(), access=Access())
    try:  # the order survives a restart
        assert [item.stem for item in resumed.desk().queue.items][:2] == ["a_unsure", "b_look"]
    finally:
        resumed.close()
