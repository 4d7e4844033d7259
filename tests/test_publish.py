"""Publishing a dataset to the Hub (``export ROOT --to-hub``) against a fake HfApi: the files in
ToonOut's layout, the dataset card's metadata and counts, stale files, failures in one sentence."""
from __future__ import annotations

import numpy as np
import pytest
from huggingface_hub import DatasetCard

from conftest import save_png
from fake_hub import REPO_ID, FakeHub, http_error
from toonmatte.cli import main
from toonmatte.dataset import DatasetStore, encode_triple, list_items
from toonmatte.dataset.publish import publish
from toonmatte.errors import ToonmatteError


def _save(store: DatasetStore, stem: str, value: int, annotator: str | None, changed: bool = True) -> None:
    image = np.full((8, 8, 3), value, np.uint8)
    alpha = np.full((8, 8), value, np.uint8)
    predicted = alpha.copy()
    if changed:
        predicted[:4] = 255 - value
    store.save_triple(stem, encode_triple(image, alpha, image, predicted), model="toonout", model_version="v2",
                      annotator=annotator)


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "ds"
    with DatasetStore(root, generation="g1") as store:
        _save(store, "a", 10, "ann")
        _save(store, "a", 11, "ann")
        _save(store, "b", 20, "bob", changed=False)
        _save(store, "c", 30, None)
    with DatasetStore(root, split="val", generation="g2") as store:
        _save(store, "d", 40, "ann")
    for kind in ("im", "gt", "an"):  # an item from elsewhere, with no record
        save_png(root / "test" / "toonout" / kind / "e.png",
                 np.zeros((8, 8, 3 if kind != "gt" else 1), np.uint8).squeeze())
    save_png(root / "test" / "toonout" / "im" / "half.png", np.zeros((8, 8, 3), np.uint8))  # incomplete
    return root


def test_publish_sends_the_layout_and_a_card_in_one_commit(dataset):
    api = FakeHub()
    result = publish(dataset, REPO_ID, api=api, licence="cc-by-4.0")
    assert (result.items, result.files, result.deleted, result.skipped) == (5, 15, 0, 1)
    [commit] = api.commits
    assert (commit["repo_id"], commit["repo_type"]) == (REPO_ID, "dataset")
    assert "train/g1/gt/a.png" in commit["added"] and "val/g2/an/d.png" in commit["added"]
    assert "test/toonout/im/half.png" not in commit["added"]
    assert not [path for path in commit["added"] if path.startswith(".") or "/." in path]  # no index, history, sync
    assert api.files["train/g1/gt/a.png"] == (dataset / "train" / "g1" / "gt" / "a.png").read_bytes()

    card = DatasetCard(api.files["README.md"].decode())
    assert card.data.license == "cc-by-4.0"
    assert card.data.task_categories == ["image-segmentation"] and card.data.size_categories == ["n<1K"]
    assert card.data.annotations_creators == ["machine-generated", "expert-generated"]
    text = card.text
    assert "5 items: test 1, train 3, val 1." in text
    assert "| train | g1 | 3 |" in text and "| val | g2 | 1 |" in text and "| test | toonout | 1 |" in text
    assert "| ann | 2 |" in text and "| bob | 1 |" in text and "2 items name no annotator." in text
    assert "Models: toonout (v2) for 4." in text
    assert "Corrections: 3 of the 4 items saved with the model's prediction were changed by hand" in text
    assert "1 item came from elsewhere" in text
    assert "Published under the `cc-by-4.0` licence." in text


def test_publishing_again_removes_what_moved_and_keeps_other_files(dataset):
    api = FakeHub()
    publish(dataset, REPO_ID, api=api)
    api.files["versions/a/0123/im.png"] = b"synced"  # the studio's Hub sync, in the same repo
    with DatasetStore(dataset) as store:
        [item] = [item for item in list_items(dataset) if item.stem == "b"]
        store.prune_empty_folders(store.move_item(item, "val"))
    result = publish(dataset, REPO_ID, api=api)
    assert result.deleted == 3
    assert sorted(api.commits[-1]["deleted"]) == [f"train/g1/{k}/b.png" for k in ("an", "gt", "im")]
    assert "val/g1/im/b.png" in api.files and "versions/a/0123/im.png" in api.files
    assert "The publisher chose no licence here" in api.files["README.md"].decode()


def test_publish_failures_are_one_sentence(dataset, tmp_path):
    (tmp_path / "empty").mkdir()
    api = FakeHub()
    api.fail("create_commit", http_error(403))
    with pytest.raises(ToonmatteError, match=rf"^The dataset was not published to {REPO_ID} because the token may "
                                             rf"not write to {REPO_ID} \(give HF_TOKEN write access to it\)\.$"):
        publish(dataset, REPO_ID, api=api)
    with pytest.raises(ToonmatteError, match="holds no complete im/gt/an triple"):
        publish(tmp_path / "empty", REPO_ID, api=api)
    with pytest.raises(ToonmatteError, match="not a Hub dataset name"):
        publish(dataset, "nope", api=api)


def test_export_command_publishes_a_root_and_still_knows_onnx(dataset, monkeypatch, capsys):
    import huggingface_hub

    api = FakeHub()
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda *args, **kwargs: api)
    assert main(["export", str(dataset), "--to-hub", REPO_ID, "--license", "mit", "--private"]) == 0
    assert "published 5 items (15 files, 0 stale files removed; skipped 1 incomplete items)" in capsys.readouterr().out
    assert api.repos[REPO_ID]["private"] is True
    assert main(["export", str(dataset)]) == 1
    assert "add --to-hub OWNER/NAME" in capsys.readouterr().err
    assert main(["export", "onnx"]) == 1
    assert "add --out FILE" in capsys.readouterr().err


def test_a_publish_too_large_for_one_commit_goes_through_a_merged_pull_request(dataset, monkeypatch):
    """Past the Hub's files-per-commit advice (here 4), the files go up in parts on a pull request that is then
    merged: main changes once, with everything, and deletions of what moved come with it."""
    from toonmatte.dataset import hub

    monkeypatch.setattr(hub, "FILES_PER_COMMIT", 4)
    api = FakeHub()
    api.files["train/g9/im/gone.png"] = b"old"  # published before, no longer in the dataset
    result = publish(dataset, REPO_ID, api=api)
    assert (result.files, result.deleted) == (15, 1)  # 15 files, the deletion and the README: 5 parts
    [pull] = api.pulls.values()
    assert pull["status"] == "merged"
    assert [len(commit["added"]) + len(commit["deleted"]) for commit in pull["commits"]] == [4, 4, 4, 4, 1]
    assert "(part 1 of 5)" in pull["commits"][0]["message"]
    [merge] = api.commits  # main: one change
    assert merge["pull"] == 1 and len(merge["added"]) == 16 and merge["deleted"] == ["train/g9/im/gone.png"]
    assert api.files["val/g2/an/d.png"] == (dataset / "val" / "g2" / "an" / "d.png").read_bytes()
    assert "README.md" in api.files and "train/g9/im/gone.png" not in api.files


def test_a_publish_that_fails_part_way_leaves_main_as_it_was(dataset, monkeypatch):
    from toonmatte.dataset import hub

    monkeypatch.setattr(hub, "FILES_PER_COMMIT", 4)
    api = FakeHub()
    publish(dataset, REPO_ID, api=api)
    before = dict(api.files)
    with DatasetStore(dataset) as store:
        [item] = [item for item in list_items(dataset) if item.stem == "b"]
        store.prune_empty_folders(store.move_item(item, "val"))
    api.fail("create_commit", http_error(503), after=2)  # the third part of the pull request
    with pytest.raises(ToonmatteError, match=rf"^The dataset was not published to {REPO_ID} because .*503"):
        publish(dataset, REPO_ID, api=api)
    assert api.files == before and api.pulls[2]["status"] == "closed"
