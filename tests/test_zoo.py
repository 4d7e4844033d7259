"""The model zoo: entries, lookup by name, and input sizes."""
from __future__ import annotations

import pytest

from toonmatte.errors import ToonmatteError
from toonmatte.zoo import DEFAULT_MODEL, ZOO, get_spec


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
