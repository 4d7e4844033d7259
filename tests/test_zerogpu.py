"""ZeroGPU: the studio's model calls go through one ``spaces.GPU`` function with a duration that fits
the call, the model is placed on "cuda" in the main thread with CUDA graphs off, and nothing changes
off ZeroGPU. No GPU here: ZeroGPU itself is emulated by the ``spaces`` package in a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from annotate import engine as engine_module
from annotate import zerogpu
from annotate.engine import Engine
from annotate.queue import QueueItem
from conftest import REPO, draw_toon, save_png
from toonmatte.errors import ToonmatteError
from toonmatte.imaging.imageio import GRAY
from toonmatte.pipeline import Matte


@pytest.fixture(autouse=True)
def fresh_detection(monkeypatch):
    """``zerogpu.active`` caches its answer; every test starts without it and off ZeroGPU."""
    monkeypatch.delenv(zerogpu.ENV, raising=False)
    active = zerogpu.active
    active.cache_clear()
    yield
    active.cache_clear()


class FakeMatter:
    """What the engine needs of a loaded ``Matter``, on a pretend device; alpha = the red channel."""

    def __init__(self, device: str = "cuda", fallback: bool = False) -> None:
        self.device, self.is_fallback = torch.device(device), fallback
        self.engine = "fallback" if fallback else "toonout"
        self.background, self.title, self.version = GRAY, "ToonOut", "v1"
        self.backend, self.fallback_reason = "torch", None
        self.batches: list[int] = []

    def predict_batch(self, images):
        self.batches.append(len(images))
        return [Matte(image.rgb[..., 0].copy(), image.rgb, self.engine) for image in images]


@pytest.fixture
def on_zerogpu(monkeypatch):
    """ZeroGPU as the engine sees it: ``active`` is true and ``gpu`` records each call's purpose,
    image count and the duration it would ask for."""
    calls: list[tuple[str, int, int]] = []

    def gpu(task, duration):
        def on_gpu(images, purpose):
            calls.append((purpose, len(images), duration(images, purpose)))
            return task(images, purpose)
        return on_gpu

    monkeypatch.setattr(zerogpu, "active", lambda: True)
    monkeypatch.setattr(zerogpu, "gpu", gpu)
    return calls


def test_off_zerogpu_the_gpu_function_is_the_function_itself(monkeypatch):
    def task(images, purpose):
        return images

    assert not zerogpu.active()
    assert zerogpu.gpu(task, zerogpu.duration) is task
    monkeypatch.setenv(zerogpu.ENV, "false")
    zerogpu.active.cache_clear()
    assert zerogpu.gpu(task, zerogpu.duration) is task


def test_zerogpu_without_the_spaces_package_runs_on_the_cpu_and_says_how_to_fix_it(monkeypatch, caplog):
    monkeypatch.setenv(zerogpu.ENV, "true")
    monkeypatch.setitem(sys.modules, "spaces", None)
    monkeypatch.setitem(sys.modules, "spaces.config", None)

    def task(images, purpose):
        return images

    assert zerogpu.gpu(task, zerogpu.duration) is task
    assert "add spaces to requirements.txt" in caplog.text


def test_durations_fit_the_call_and_a_batch_stays_within_the_maximum():
    one = [object()]
    assert zerogpu.duration(one, "image") == zerogpu.DURATIONS["image"]
    assert zerogpu.duration(one, "prefetch") == zerogpu.DURATIONS["prefetch"]
    batch = [object()] * zerogpu.BATCH_IMAGES
    full = zerogpu.DURATIONS["batch"] + (zerogpu.BATCH_IMAGES - 1) * zerogpu.PER_EXTRA_IMAGE_S
    assert zerogpu.duration(batch, "batch") == full <= zerogpu.MAX_DURATION_S
    assert zerogpu.duration(batch + batch, "batch") == zerogpu.MAX_DURATION_S


def test_on_zerogpu_every_model_call_goes_through_the_gpu_function_with_its_purpose(on_zerogpu, tmp_path):
    matter = FakeMatter()
    engine = Engine(loader=lambda *_: matter).start()
    rgb, _ = draw_toon(40, 30)
    path = tmp_path / "hero.png"
    save_png(path, rgb)

    matte = engine.predict(path)
    assert np.array_equal(matte.alpha, rgb[..., 0]) and np.array_equal(matte.image, rgb) and matte.engine == "toonout"
    prediction = engine.predict_item(QueueItem("hero", path))
    assert np.array_equal(prediction.alpha, rgb[..., 0]) and prediction.version == "v1"
    mattes = engine.predict_many([rgb] * (zerogpu.BATCH_IMAGES + 1))
    assert len(mattes) == zerogpu.BATCH_IMAGES + 1
    full = zerogpu.DURATIONS["batch"] + (zerogpu.BATCH_IMAGES - 1) * zerogpu.PER_EXTRA_IMAGE_S
    assert on_zerogpu == [("image", 1, zerogpu.DURATIONS["image"]), ("prefetch", 1, zerogpu.DURATIONS["prefetch"]),
                          ("batch", zerogpu.BATCH_IMAGES, full), ("batch", 1, zerogpu.DURATIONS["batch"])]
    assert "on ZeroGPU" in engine.banner()[0]


@pytest.mark.parametrize("matter", [FakeMatter(fallback=True), FakeMatter(device="cpu")], ids=["fallback", "cpu"])
def test_the_fallback_and_a_cpu_engine_ask_for_no_gpu(on_zerogpu, matter):
    engine = Engine(loader=lambda *_: matter).start()
    rgb, _ = draw_toon(20, 20)
    assert np.array_equal(engine.predict(rgb).alpha, rgb[..., 0])
    assert on_zerogpu == [] and matter.batches == [1]


def test_on_zerogpu_the_model_loads_in_the_main_thread_only(on_zerogpu):
    threads: list[str] = []

    def loader(*_):
        threads.append(threading.current_thread().name)
        return FakeMatter()

    engine = Engine(loader=loader)
    worker = threading.Thread(target=engine.start, name="request")
    worker.start()
    worker.join()
    assert threads == []  # a request that comes first waits for the main thread's load
    engine.start()
    engine.start()
    assert threads == [threading.main_thread().name] and engine.get(timeout=1).device.type == "cuda"


def test_the_default_loader_turns_cuda_graphs_off_and_refuses_onnx_on_zerogpu(monkeypatch):
    import toonmatte.pipeline

    made: list[dict] = []
    monkeypatch.setattr(toonmatte.pipeline, "Matter", lambda **options: made.append(options))
    engine_module._default_loader("toonout", None, None)
    assert made[-1]["cuda_graphs"] is True
    monkeypatch.setattr(zerogpu, "active", lambda: True)
    engine_module._default_loader("toonout", None, None)
    assert made[-1]["cuda_graphs"] is False
    with pytest.raises(ToonmatteError, match="onnx backend cannot run on ZeroGPU"):
        engine_module._default_loader("toonout", None, None, backend="onnx")


EMULATED = r"""
import json, sys, torch
from toonmatte.model.birefnet import BiRefNetConfig, build_model

torch.manual_seed(0)
torch.save(build_model(BiRefNetConfig.tiny()).state_dict(), sys.argv[1])
from annotate import zerogpu
from annotate.engine import Engine
from spaces.zero import decorator
from spaces.zero.torch import patching

engine = Engine(weights=sys.argv[1])
registered = engine._mattes_on_gpu in decorator.decorated_cache.values()
matter = engine.start().get(timeout=0)
print(json.dumps({
    "active": zerogpu.active(), "registered": registered, "engine": matter.engine,
    "device": str(matter.device), "precision": matter.precision, "graphs": matter._graphed is not None,
    "parameters": [str(p.device) for p in matter._fast_net.parameters()][:3],
    "intercepted": sum(1 for original in patching.cuda_aliases.values() if original is not None),
}))
"""


@pytest.mark.timeout(300)
def test_on_emulated_zerogpu_the_model_is_placed_on_cuda_with_graphs_off(tmp_path):
    """The ``spaces`` package's own ZeroGPU emulation (as on a Space before any GPU is lent): the
    engine's GPU function is registered, and the model is moved to "cuda" in the main thread."""
    pytest.importorskip("spaces")
    env = {**os.environ, zerogpu.ENV: "true", "SPACES_ZERO_DEVICE_API_URL": "http://127.0.0.1:9",
           "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "TOONMATTE_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", EMULATED, str(tmp_path / "tiny.pth")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stderr[-3000:]
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts["active"] and facts["registered"] and facts["engine"] == "toonout"
    assert facts["device"] == "cuda" and facts["precision"] == "bf16" and not facts["graphs"]
    assert set(facts["parameters"]) == {"cuda:0"} and facts["intercepted"] > 0
