"""The model zoo: entries, lookup by name, and input sizes."""
from __future__ import annotations

import json

import pytest

from toonmatte.errors import ToonmatteError
from toonmatte.model.zoo import DEFAULT_MODEL, ZOO, get_spec


def test_zoo_lists_the_five_models_with_toonout_as_default():
    assert list(ZOO) == ["toonout", "birefnet", "birefnet-hr", "birefnet-hr-matting", "birefnet-dynamic"]
    assert DEFAULT_MODEL == "toonout"
    toonout = ZOO["toonout"]
    assert (toonout.repo_id, toonout.filename, toonout.resolution) == (
        "joelseytre/toonout",
        "birefnet_finetuned_toonout.pth",
        1024,
    )
    assert ZOO["birefnet"].filename == "model.safetensors"
    assert ZOO["birefnet-hr"].resolution == ZOO["birefnet-hr-matting"].resolution == 2048
    assert ZOO["birefnet-dynamic"].resolution is None
    for name, spec in ZOO.items():
        assert spec.name == name
        assert spec.dtype in {"float32", "float16"}
        assert spec.licence and spec.description and "\n" not in spec.description


def test_get_spec_ignores_case_and_underscores():
    assert get_spec("ToonOut") is ZOO["toonout"]
    assert get_spec("birefnet_hr_matting") is ZOO["birefnet-hr-matting"]


def test_unknown_model_names_the_known_ones_and_suggests_the_closest():
    with pytest.raises(ToonmatteError) as caught:
        get_spec("tonout")
    message = str(caught.value)
    assert "'tonout'" in message and "did you mean 'toonout'" in message
    for name in ZOO:
        assert name in message


def test_input_size_is_fixed_or_rounded_to_multiples_of_32():
    assert ZOO["toonout"].input_size(300, 700) == (1024, 1024)
    assert ZOO["birefnet-hr"].input_size(300, 700) == (2048, 2048)
    assert ZOO["birefnet-dynamic"].input_size(300, 700) == (288, 704)
    assert ZOO["birefnet-dynamic"].input_size(5, 1030) == (32, 1024)


def test_a_path_is_a_local_checkpoint_and_a_fine_tune_card_names_it(tmp_path):
    from toonmatte.model.zoo import checkpoint_spec, get_spec, spec_for

    run = tmp_path / "anime-v2"
    run.mkdir()
    (run / "best.safetensors").write_bytes(b"")
    plain = get_spec(str(run / "best.safetensors"))  # no card yet: a plain checkpoint at ToonOut's size
    assert (plain.name, plain.title, plain.resolution, plain.revision) == (
        "anime-v2/best.safetensors", "best.safetensors", 1024, None)
    card = {"weights": "best.safetensors", "weights_sha256": "ab" * 32, "training": {"size": 512},
            "init": {"name": "toonout", "licence": "MIT"}, "data": {"counts": {"train": 40, "val": 5}},
            "epochs_completed": 3, "best": {"val_pa": 0.98765}}
    (run / "card.json").write_text(json.dumps(card))
    for spec in (get_spec(str(run)), checkpoint_spec(run / "best.safetensors"),
                 spec_for("toonout", run / "best.safetensors")):
        assert spec.name == "anime-v2/best.safetensors" and spec.title == "fine-tune anime-v2"
        assert spec.resolution == 512 and spec.revision == "ab" * 6 and spec.licence == "MIT"
        assert spec.path == str(run / "best.safetensors")
        assert spec.description == "Fine-tuned from toonout on 40 training images for 3 epoch(s); val PA 0.9877."
    assert spec_for("birefnet", tmp_path / "other.pth") is ZOO["birefnet"]  # no card: the named model
    (run / "card.json").write_text(json.dumps({**card, "weights": "older.safetensors"}))
    assert get_spec(str(run)).title == "best.safetensors"  # a card about another file is not this one's


def test_a_zoo_entry_must_state_its_revision_and_hash():
    from toonmatte.model.zoo import ModelSpec

    fields = {"name": "x", "title": "X", "repo_id": "a/b", "filename": "m.safetensors", "resolution": 1024,
              "dtype": "float32", "licence": "MIT", "description": "d"}
    with pytest.raises(TypeError, match="sha256"):
        ModelSpec(**fields, revision=None)
    assert ModelSpec(**fields, revision=None, sha256=None).sha256 is None
