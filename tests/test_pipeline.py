"""Matter: loading, ToonOut's pre/post-processing, batching, fallback and precision handling."""
from __future__ import annotations

import dataclasses
import logging
import threading

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import draw_toon, fake_hub_file
from toonmatte.errors import WeightsError
from toonmatte.model import zoo
from toonmatte.model.birefnet import BiRefNetConfig, build_model
from toonmatte.model.inference import optimize_for_inference
from toonmatte.model.weights import file_sha256
from toonmatte.pipeline import IMAGENET_MEAN, IMAGENET_STD, Matter, model_for_precision, postprocess, preprocess


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny BiRefNet saved the way ToonOut's checkpoint is: a flat .pth with 'module._orig_mod.' prefixes."""
    torch.manual_seed(0)
    model = build_model(BiRefNetConfig.tiny())
    path = tmp_path_factory.mktemp("weights") / "tiny_toonout.pth"
    torch.save({f"module._orig_mod.{k}": v for k, v in model.state_dict().items()}, path)
    return path, model



def test_the_version_is_the_pinned_revision_only_for_the_hub_file(tiny_checkpoint, offline_hub, monkeypatch):
    """Dataset records name what produced a matte: the Hub commit for the zoo's file, the file's own name for a
    local file standing in for it (passed, or in $TOONMATTE_WEIGHTS), which is not that commit."""
    path, _ = tiny_checkpoint
    assert Matter(weights=path, device="cpu").version == path.name
    monkeypatch.setenv("TOONMATTE_WEIGHTS", str(path))
    assert Matter(device="cpu").version == path.name
    monkeypatch.delenv("TOONMATTE_WEIGHTS")

    spec = dataclasses.replace(zoo.ZOO["toonout"], sha256=file_sha256(path))  # the real pin, this file's hash
    monkeypatch.setitem(zoo.ZOO, "toonout", spec)
    fake_hub_file(offline_hub / "hf" / "hub", spec.repo_id, spec.filename, path.read_bytes(), commit=spec.revision)
    from_hub = Matter(device="cpu")
    assert not from_hub.is_fallback and from_hub.version == spec.revision


def test_preprocess_resizes_with_opencv_bilinear_and_normalizes():
    rgb = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    x = preprocess(rgb, (64, 96))
    assert x.shape == (3, 64, 96) and x.dtype == torch.float32
    resized = cv2.resize(rgb, (96, 64), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    expected = (resized - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), expected, atol=1e-6)


def test_postprocess_is_sigmoid_resized_back_to_8_bit():
    logits = torch.tensor([[[-100.0, 0.0], [100.0, 0.0]]])
    alpha = postprocess(logits, (2, 2))
    assert alpha.dtype == np.uint8 and alpha.tolist() == [[0, 128], [255, 128]]
    assert postprocess(logits, (5, 7)).shape == (5, 7)


def test_loads_prefixed_checkpoint_by_path_and_matches_manual_inference(tiny_checkpoint):
    path, model = tiny_checkpoint
    matter = Matter(weights=path, device="cpu")
    assert matter.engine == "toonout" and not matter.is_fallback and matter.fallback_reason is None
    rgb, _ = draw_toon(90, 120)
    matte = matter.predict(rgb)
    assert matte.engine == "toonout"
    assert matte.alpha.shape == (90, 120) and matte.alpha.dtype == np.uint8
    with torch.inference_mode():
        logits = model(preprocess(rgb, (1024, 1024))[None])[0]
    # The pipeline runs the inference-optimized graph (BatchNorm folded into convolutions): rounding may differ.
    np.testing.assert_allclose(matte.alpha.astype(int), postprocess(logits, (90, 120)).astype(int), atol=1)


def test_rgba_input_is_composited_onto_gray_before_inference(tiny_checkpoint):
    matter = Matter(weights=tiny_checkpoint[0], device="cpu")
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 255  # red everywhere, opaque only in the centre
    rgba[10:30, 10:30, 3] = 255
    matte = matter.predict(Image.fromarray(rgba, "RGBA"))
    assert matte.image[0, 0].tolist() == [128, 128, 128]
    assert matte.image[20, 20].tolist() == [255, 0, 0]
    np.testing.assert_array_equal(matte.alpha, matter.predict(matte.image).alpha)


def test_dynamic_model_runs_at_the_image_size_rounded_to_32(tiny_checkpoint, monkeypatch):
    matter = Matter("birefnet-dynamic", weights=tiny_checkpoint[0], device="cpu")
    seen = []
    original = matter.forward
    monkeypatch.setattr(matter, "forward", lambda batch: seen.append(tuple(batch.shape)) or original(batch))
    assert matter.predict(draw_toon(70, 100)[0]).alpha.shape == (70, 100)
    assert seen == [(1, 3, 64, 96)]


# The dynamic model runs at the image's own size, which keeps the tests below fast.
def test_batched_prediction_equals_one_by_one(tiny_checkpoint):
    matter = Matter("birefnet-dynamic", weights=tiny_checkpoint[0], device="cpu")
    images = [draw_toon(64, 64, seed=s)[0] for s in range(3)] + [draw_toon(48, 80)[0]]
    batched = matter.predict_batch(images, batch_size=3)
    for image, matte in zip(images, batched):
        np.testing.assert_allclose(matte.alpha.astype(int), matter.predict(image).alpha.astype(int), atol=1)


def test_concurrent_callers_get_their_own_results(tiny_checkpoint):
    matter = Matter("birefnet-dynamic", weights=tiny_checkpoint[0], device="cpu")
    images = [draw_toon(64, 64, seed=s)[0] for s in range(4)]
    expected = [matter.predict(image).alpha for image in images]
    results: dict[int, np.ndarray] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, matter.predict(images[i]).alpha))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        np.testing.assert_array_equal(results[i], expected[i])


def test_half_precision_nan_is_recomputed_in_fp32(tiny_checkpoint, monkeypatch, caplog):
    matter = Matter("birefnet-dynamic", weights=tiny_checkpoint[0], device="cpu", precision="bf16")
    reference = Matter("birefnet-dynamic", weights=tiny_checkpoint[0], device="cpu", precision="fp32")
    original = matter._run

    def nan_in_half(batch, precision):
        out = original(batch, precision)
        return out * float("nan") if precision != "fp32" else out

    monkeypatch.setattr(matter, "_run", nan_in_half)
    rgb, _ = draw_toon(64, 64)
    with caplog.at_level(logging.WARNING):
        alpha = matter.predict(rgb).alpha
    assert "recomputed in fp32" in caplog.text
    np.testing.assert_array_equal(alpha, reference.predict(rgb).alpha)


def test_bf16_on_cpu_is_close_to_fp32(tiny_checkpoint):
    rgb, _ = draw_toon(64, 64)
    fp32 = Matter("birefnet-dynamic", weights=tiny_checkpoint[0], device="cpu", precision="fp32").predict(rgb).alpha
    bf16 = Matter("birefnet-dynamic", weights=tiny_checkpoint[0], device="cpu", precision="bf16").predict(rgb).alpha
    assert np.abs(fp32.astype(int) - bf16.astype(int)).mean() < 3


def test_missing_weights_offline_fall_back_with_a_reason(caplog):
    with caplog.at_level(logging.WARNING):
        matter = Matter(device="cpu")
    assert matter.is_fallback and matter.engine == "fallback"
    assert matter.fallback_reason and "fallback" in matter.fallback_reason
    assert matter.fallback_reason in caplog.text
    rgb, alpha = draw_toon(128, 128)
    matte = matter.predict(rgb)
    assert matte.engine == "fallback" and matte.alpha.shape == alpha.shape


def test_missing_weights_without_fallback_raise(tmp_path):
    with pytest.raises(WeightsError):
        Matter(device="cpu", allow_fallback=False)
    with pytest.raises(WeightsError, match="missing.pth"):
        Matter(weights=tmp_path / "missing.pth", device="cpu", allow_fallback=False)


def test_a_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 7, 7), "fc.bias": torch.zeros(10)}, path)
    with pytest.raises(WeightsError, match="not a BiRefNet checkpoint"):
        Matter(weights=path, device="cpu", allow_fallback=False)


def test_fallback_on_purpose_needs_no_weights():
    matter = Matter("fallback")
    assert matter.is_fallback and matter.fallback_reason is None and matter.version == "fallback"


def test_half_precision_on_cuda_runs_a_copy_with_half_weights():
    net = optimize_for_inference(build_model(BiRefNetConfig.tiny()))
    weight = net.bb.patch_embed.proj.weight
    assert model_for_precision(net, torch.device("cpu"), "bf16") is net  # CPU autocast casts once per pass
    assert model_for_precision(net, torch.device("cuda"), "fp32") is net
    fast = model_for_precision(net, torch.device("cuda"), "bf16")  # builds the copy; nothing runs on the GPU
    assert fast is not net and fast.bb.patch_embed.proj.weight.dtype == torch.bfloat16
    assert net.bb.patch_embed.proj.weight is weight and weight.dtype == torch.float32  # kept for fp32 recomputes
