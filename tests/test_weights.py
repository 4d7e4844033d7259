"""Finding, reading and loading checkpoints, with tiny state dicts built here (no real weights, no network)."""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from conftest import HUB_COMMIT, checkpoint_layout, fake_hub_file
from toonmatte.errors import ToonmatteError, WeightsError
from toonmatte.model.birefnet import BiRefNetConfig, build_model
from toonmatte.model.weights import (
    cache_dir,
    describe_mismatch,
    load_weights,
    read_state_dict,
    resolve_weights,
    strip_prefixes,
)
from toonmatte.model.zoo import ZOO


class TinyNet(nn.Module):
    """Conv, BatchNorm (with an integer buffer) and Linear: the kinds of entries a BiRefNet state dict has."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3)
        self.bn = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, 2)


def tiny_state(seed: int = 0, width: int = 4) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v.clone()
             for k, v in TinyNet(width).state_dict().items()}
    state["bn.num_batches_tracked"] = torch.tensor(7)
    return state


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real hub, no real cache: every test gets its own HF_HOME and conversion cache, offline."""
    for name in ("TOONMATTE_WEIGHTS", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOONMATTE_CACHE", str(tmp_path / "toonmatte_cache"))


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize("prefix", ["", "module.", "_orig_mod.", "module._orig_mod."])
def test_prefixes_are_stripped_before_a_strict_load(tmp_path: Path, prefix: str):
    state = tiny_state()
    path = tmp_path / "ckpt.pth"
    torch.save({prefix + key: value for key, value in state.items()}, path)
    assert_same(read_state_dict(path), state)
    model = load_weights(TinyNet(), path)
    assert_same(model.state_dict(), state)


def test_strip_prefixes_only_touches_leading_wrappers():
    state = {"module._orig_mod.bb.module.x": torch.zeros(1), "_orig_mod.module.y": torch.zeros(1)}
    # DDP's "module." wraps torch.compile's "_orig_mod.", never the other way round.
    assert list(strip_prefixes(state)) == ["bb.module.x", "module.y"]


@pytest.mark.parametrize("outer", ["state_dict", "model", "model_state_dict"])
def test_nested_training_checkpoint_is_unwrapped(tmp_path: Path, outer: str):
    state = tiny_state()
    path = tmp_path / "train.pt"
    torch.save({outer: {"module." + k: v for k, v in state.items()}, "epoch": 100, "lr": 1e-5}, path)
    assert_same(read_state_dict(path), state)


def test_fp16_safetensors_is_cast_to_float32(tmp_path: Path):
    state = tiny_state()
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    path = tmp_path / "model.safetensors"
    save_file(half, str(path))
    loaded = read_state_dict(path)
    assert loaded["conv.weight"].dtype == torch.float32
    assert loaded["bn.num_batches_tracked"].dtype == torch.int64
    assert torch.equal(loaded["conv.weight"], half["conv.weight"].float())
    assert not cache_dir().exists()  # safetensors needs no conversion


def test_bf16_state_dict_is_cast_when_loaded(tmp_path: Path):
    state = {k: v.bfloat16() if v.is_floating_point() else v for k, v in tiny_state().items()}
    model = load_weights(TinyNet(), state)
    assert model.conv.weight.dtype == torch.float32
    assert torch.equal(model.conv.weight.data, state["conv.weight"].float())


class Exploit:
    """Unpickling this would create a folder: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_pickle_with_code_is_refused_not_executed(tmp_path: Path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "payload": Exploit(marker)}, path)
    with pytest.raises(WeightsError, match="not unpickled for safety"):
        read_state_dict(path)
    assert not marker.exists()


def test_pickle_with_a_custom_class_is_refused(tmp_path: Path):
    path = tmp_path / "wrapped.pth"
    torch.save({"model": TinyNet()}, path)  # a whole module object, not a state dict
    with pytest.raises(WeightsError, match="Python objects besides tensors"):
        read_state_dict(path)


@pytest.mark.parametrize("name", ["ckpt.pth", "legacy.pth", "model.safetensors"])
def test_truncated_file_is_reported_as_damaged(tmp_path: Path, name: str):
    source = tmp_path / ("full_" + name)
    state = tiny_state()
    if name.endswith(".safetensors"):
        save_file(state, str(source))
    else:
        torch.save(state, source, _use_new_zipfile_serialization=not name.startswith("legacy"))
    data = source.read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(WeightsError) as caught:
        read_state_dict(path)
    message = str(caught.value)
    assert "damaged or incomplete" in message and str(path) in message and "\n" not in message


def test_zero_byte_file_is_reported_as_empty(tmp_path: Path):
    path = tmp_path / "birefnet_finetuned_toonout.pth"
    path.touch()
    with pytest.raises(WeightsError, match="empty"):
        read_state_dict(path)


def test_text_file_is_reported_as_damaged(tmp_path: Path):
    path = tmp_path / "notes.pth"
    path.write_text("<html>404 Not Found</html>")
    with pytest.raises(WeightsError, match="damaged or incomplete"):
        read_state_dict(path)


def test_pickle_without_tensors_is_not_a_checkpoint(tmp_path: Path):
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "config": {"lr": 1e-5}}, path)
    with pytest.raises(WeightsError, match="not a model checkpoint"):
        read_state_dict(path)


def test_missing_file_names_the_path(tmp_path: Path):
    path = tmp_path / "nowhere.pth"
    with pytest.raises(WeightsError, match="does not exist") as caught:
        read_state_dict(path)
    assert str(path) in str(caught.value)


# --------------------------------------------------------------------------- loading into a model


class Deep(nn.Module):
    def __init__(self, depth: int, width: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))


def test_wrong_model_gives_a_short_summary_with_counts(tmp_path: Path):
    path = tmp_path / "other.pth"
    torch.save(Deep(depth=300, width=2).state_dict(), path)  # 600 keys, like a different network
    with pytest.raises(WeightsError) as caught:
        load_weights(TinyNet(), path)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 700
    assert "600 keys unexpected" in message and "595 more" in message
    assert "8 keys missing" in message  # bn.num_batches_tracked is not counted as missing
    assert "different model" in message and "other.pth" in message
    assert message.count("layers.") == 5


def test_shape_mismatch_is_reported_with_both_shapes():
    state = tiny_state(width=6)
    with pytest.raises(WeightsError) as caught:
        load_weights(TinyNet(width=4), state)
    message = str(caught.value)
    assert "7 keys with the wrong shape" in message  # head.bias (2) fits
    assert "conv.weight 6x3x3x3 vs 4x3x3x3" in message
    assert "missing" not in message and "unexpected" not in message


def test_failed_load_leaves_the_model_untouched():
    model = TinyNet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = tiny_state(seed=1)
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError, match="1 key unexpected: extra.weight"):
        load_weights(model, state)
    assert_same(model.state_dict(), before)


def test_missing_num_batches_tracked_is_tolerated():
    state = tiny_state()
    del state["bn.num_batches_tracked"]
    model = load_weights(TinyNet(), state)
    assert torch.equal(model.bn.running_var, state["bn.running_var"])


def test_tiny_birefnet_round_trips_through_a_prefixed_checkpoint(tmp_path: Path):
    config = BiRefNetConfig.tiny()
    torch.manual_seed(0)
    trained = build_model(config)
    for parameter in trained.parameters():
        parameter.data.normal_(std=0.1)
    path = tmp_path / "birefnet_finetuned_toonout.pth"
    torch.save({"module._orig_mod." + k: v for k, v in trained.state_dict().items()}, path)
    fresh = load_weights(build_model(config), path)
    assert_same(fresh.state_dict(), trained.state_dict())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(fresh(x), trained(x))


def test_tiny_birefnet_from_fp16_safetensors(tmp_path: Path):
    trained = build_model(BiRefNetConfig.tiny())
    half = {k: v.half() if v.is_floating_point() else v for k, v in trained.state_dict().items()}
    path = tmp_path / "model.safetensors"
    save_file(half, str(path))
    fresh = load_weights(build_model(BiRefNetConfig.tiny()), path)
    assert_same(fresh.state_dict(), {k: v.float() if v.is_floating_point() else v for k, v in half.items()})


def test_toonout_key_layout_fits_the_full_model():
    """The published checkpoint's keys (module._orig_mod.-prefixed) against our Swin-L BiRefNet, on the meta device."""
    layout = checkpoint_layout()
    checkpoint = {
        "module._orig_mod." + key: torch.empty(entry["shape"], dtype=getattr(torch, entry["dtype"]), device="meta")
        for key, entry in layout.items()
    }
    with torch.device("meta"):
        model = build_model()
    assert describe_mismatch(model.state_dict(), strip_prefixes(checkpoint)) == ""
    with pytest.raises(WeightsError) as caught:  # the same file into a smaller BiRefNet: a 754-key clash, told briefly
        load_weights(build_model(BiRefNetConfig.tiny()), checkpoint)
    message = str(caught.value)
    assert "224 keys unexpected" in message and "437 keys with the wrong shape" in message
    assert "bb.patch_embed.proj.weight 192x3x4x4 vs 8x3x4x4" in message
    assert len(message) < 700 and "\n" not in message


# --------------------------------------------------------------------------- the conversion cache


def test_pickle_is_converted_once_and_then_read_from_safetensors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    state = tiny_state()
    path = tmp_path / "birefnet_finetuned_toonout.pth"
    torch.save({"module._orig_mod." + k: v for k, v in state.items()}, path)
    assert_same(read_state_dict(path), state)
    converted = list(cache_dir().glob("*.safetensors"))
    assert len(converted) == 1 and converted[0].name.startswith("birefnet_finetuned_toonout-")
    assert not list(cache_dir().glob("*.tmp"))

    def no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load called although a converted copy exists")

    monkeypatch.setattr(torch, "load", no_unpickling)
    assert_same(read_state_dict(path), state)


def test_replaced_source_is_converted_again(tmp_path: Path):
    path = tmp_path / "ckpt.pth"
    torch.save(tiny_state(seed=0), path)
    read_state_dict(path)
    newer = tiny_state(seed=1)
    torch.save(newer, path)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert_same(read_state_dict(path), newer)
    assert len(list(cache_dir().glob("*.safetensors"))) == 2


def test_damaged_converted_copy_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    state = tiny_state()
    path = tmp_path / "ckpt.pth"
    torch.save(state, path)
    read_state_dict(path)
    (converted,) = cache_dir().glob("*.safetensors")
    converted.write_bytes(converted.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="toonmatte.model.weights"):
        assert_same(read_state_dict(path), state)
    assert "damaged converted copy" in caplog.text
    assert_same(read_state_dict(converted), state)


def test_unwritable_cache_is_logged_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TOONMATTE_CACHE", str(blocker / "cache"))  # mkdir fails even for root
    state = tiny_state()
    path = tmp_path / "ckpt.pth"
    torch.save(state, path)
    with caplog.at_level(logging.WARNING, logger="toonmatte.model.weights"):
        assert_same(read_state_dict(path), state)
    assert "Could not write the converted checkpoint" in caplog.text


def test_cache_can_be_turned_off(tmp_path: Path):
    path = tmp_path / "ckpt.pth"
    torch.save(tiny_state(), path)
    read_state_dict(path, use_cache=False)
    assert not cache_dir().exists()


# --------------------------------------------------------------------------- resolving


def test_explicit_path_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"x")
    monkeypatch.setenv("TOONMATTE_WEIGHTS", str(tmp_path / "env.pth"))
    assert resolve_weights("toonout", explicit) == explicit
    assert resolve_weights("toonout", str(explicit)) == explicit


def test_explicit_folder_holding_the_zoo_file(tmp_path: Path):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert resolve_weights("birefnet", tmp_path) == tmp_path / "model.safetensors"
    with pytest.raises(WeightsError, match="has no birefnet_finetuned_toonout.pth"):
        resolve_weights("toonout", tmp_path)


def test_missing_explicit_path_is_named(tmp_path: Path):
    missing = tmp_path / "typo.pth"
    with pytest.raises(WeightsError) as caught:
        resolve_weights("toonout", missing)
    assert str(missing) in str(caught.value) and "does not exist" in str(caught.value)


def test_environment_variable_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "env.pth"
    path.write_bytes(b"x")
    monkeypatch.setenv("TOONMATTE_WEIGHTS", str(path))
    assert resolve_weights() == path
    monkeypatch.setenv("TOONMATTE_WEIGHTS", str(tmp_path / "gone.pth"))
    with pytest.raises(WeightsError, match="from TOONMATTE_WEIGHTS"):
        resolve_weights()


def pinned(spec_name: str, content: bytes, sha256: str | None = None, revision: str = HUB_COMMIT):
    """The zoo entry ``spec_name`` pinned at ``revision`` to ``content``'s SHA-256 (or to ``sha256``)."""
    return dataclasses.replace(ZOO[spec_name], revision=revision,
                               sha256=sha256 or hashlib.sha256(content).hexdigest())


def test_offline_hub_cache_under_hf_home_is_found(tmp_path: Path):
    content = b"the pinned weights"
    expected = fake_hub_file(tmp_path / "hf_home" / "hub", "joelseytre/toonout", "birefnet_finetuned_toonout.pth",
                             content)
    found = resolve_weights(pinned("toonout", content))
    assert found.resolve() == expected.resolve()
    assert found.read_bytes() == content


def test_offline_hub_cache_under_hf_hub_cache_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    content = b"dynamic weights"
    expected = fake_hub_file(tmp_path / "elsewhere", "ZhengPeng7/BiRefNet_dynamic", "model.safetensors", content)
    assert resolve_weights(pinned("birefnet-dynamic", content)).resolve() == expected.resolve()


def test_a_file_whose_hash_is_not_the_pinned_one_is_refused_in_one_sentence(tmp_path: Path):
    fake_hub_file(tmp_path / "hf_home" / "hub", "joelseytre/toonout", "birefnet_finetuned_toonout.pth", b"tampered")
    spec = pinned("toonout", b"the pinned weights")
    with pytest.raises(WeightsError) as caught:
        resolve_weights(spec)
    message = str(caught.value)
    assert spec.sha256 in message and hashlib.sha256(b"tampered").hexdigest() in message
    assert "delete it from the Hugging Face cache" in message and "--weights PATH" in message
    assert "\n" not in message and message.count(". ") == 0


def test_a_revision_not_in_the_cache_is_not_replaced_by_main(tmp_path: Path):
    """The pinned commit is what is looked up: the file at another commit (here the cached main) does not stand in."""
    content = b"weights at main"
    fake_hub_file(tmp_path / "hf_home" / "hub", "joelseytre/toonout", "birefnet_finetuned_toonout.pth", content)
    with pytest.raises(WeightsError, match="not in the Hugging Face cache"):
        resolve_weights(pinned("toonout", content, revision="f" * 40))


@pytest.mark.parametrize("name", sorted(ZOO))
def test_each_zoo_entry_is_read_at_its_pinned_commit_and_checked_against_its_hash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str):
    """The real pins are in force: a file cached at the entry's commit is found there and hashed, and bytes that are
    not the published checkpoint are refused with the pinned SHA-256 named; the same bytes at main are not read."""
    spec = ZOO[name]
    assert re.fullmatch(r"[0-9a-f]{40}", spec.revision) and re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
    hub = tmp_path / "hf_home" / "hub"
    fake_hub_file(hub, spec.repo_id, spec.filename, b"not the published checkpoint", commit=spec.revision)
    with pytest.raises(WeightsError, match=f"not the {spec.sha256} pinned for {re.escape(spec.repo_id)} at "
                                           f"revision {spec.revision}"):
        resolve_weights(name)

    elsewhere = tmp_path / "other_home" / "hub"
    fake_hub_file(elsewhere, spec.repo_id, spec.filename, b"not the published checkpoint")
    monkeypatch.setenv("HF_HUB_CACHE", str(elsewhere))
    with pytest.raises(WeightsError, match="not in the Hugging Face cache"):
        resolve_weights(name)


def test_offline_miss_says_what_to_do():
    with pytest.raises(WeightsError) as caught:
        resolve_weights("toonout")
    message = str(caught.value)
    assert message.startswith("ToonOut weights are not in the Hugging Face cache")
    parts = ("HF_HUB_OFFLINE", "birefnet_finetuned_toonout.pth", "joelseytre/toonout", "--weights PATH",
             "TOONMATTE_WEIGHTS")
    for part in parts:
        assert part in message
    assert "\n" not in message


def test_hub_is_asked_with_the_environment_read_at_call_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    calls = []

    def unreachable(repo_id, filename, **kwargs):
        calls.append((repo_id, filename, kwargs))
        raise LocalEntryNotFoundError("connection refused")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "late_home"))
    with pytest.raises(WeightsError, match="the Hub cannot be reached"):
        resolve_weights("birefnet-hr")
    (repo_id, filename, kwargs), = calls
    assert (repo_id, filename) == ("ZhengPeng7/BiRefNet_HR", "model.safetensors")
    assert kwargs["cache_dir"] == str(tmp_path / "late_home" / "hub")
    assert kwargs["local_files_only"] is False
    assert kwargs["revision"] == ZOO["birefnet-hr"].revision


def test_other_hub_failures_become_one_sentence(monkeypatch: pytest.MonkeyPatch):
    import huggingface_hub

    def gated(*args, **kwargs):
        raise PermissionError("403 Client Error: gated repo\nlong body")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", gated)
    with pytest.raises(WeightsError) as caught:
        resolve_weights("birefnet")
    message = str(caught.value)
    assert "PermissionError: 403 Client Error: gated repo" in message and "\n" not in message
    assert "--weights PATH" in message


def test_unknown_model_is_not_a_weights_error():
    with pytest.raises(ToonmatteError) as caught:
        resolve_weights("birefnet-xl")
    assert not isinstance(caught.value, WeightsError)


def test_a_local_checkpoint_spec_is_read_from_its_own_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from toonmatte.model.zoo import checkpoint_spec

    weights = tmp_path / "run" / "best.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"x")
    # the model's own path wins over the variable
    monkeypatch.setenv("TOONMATTE_WEIGHTS", str(tmp_path / "elsewhere.pth"))
    assert resolve_weights(checkpoint_spec(weights)) == weights
    assert resolve_weights(str(weights.parent)) == weights
    with pytest.raises(WeightsError, match="does not exist"):
        resolve_weights(str(tmp_path / "missing" / "best.safetensors"))
