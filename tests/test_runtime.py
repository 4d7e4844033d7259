"""The CPU fast path: when bf16 is picked, and that the optimized model runs in it close to fp32."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from conftest import REPO, draw_toon
from toonmatte import pipeline
from toonmatte.model import runtime
from toonmatte.model.birefnet import BiRefNetConfig, build_model
from toonmatte.model.inference import optimize_for_inference
from toonmatte.pipeline import pick_precision, postprocess, preprocess


@pytest.mark.parametrize("has_bf16,expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_cpu_follows_the_bf16_instructions(monkeypatch, has_bf16, expected):
    monkeypatch.setattr(pipeline, "cpu_supports_bf16", lambda: has_bf16)
    cpu = torch.device("cpu")
    assert pick_precision("auto", cpu) == expected
    assert pick_precision(None, cpu) == expected
    assert pick_precision("fp32", cpu) == "fp32"  # explicit choices stand
    assert pick_precision("bf16", cpu) == "bf16"


FREED_BLOCK = """
import sys
from pathlib import Path

import torch

from toonmatte.model import runtime


def resident() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


if sys.argv[1] == "keep":
    assert runtime.keep_freed_memory()
block = torch.ones(1 << 25)  # 128 MiB, touched
assert block.sum() == 1 << 25  # large allocations still work without mmap
before = resident()
del block
print((before - resident()) / 2**20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_keeps_a_freed_block_in_the_process():
    """In a subprocess, since the setting is for the whole process: by default a freed 128 MiB block goes back
    to the kernel; with the setting it stays resident for the next allocation."""
    returned = {}
    for mode in ("default", "keep"):
        done = subprocess.run([sys.executable, "-c", FREED_BLOCK, mode], cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        returned[mode] = float(done.stdout.split()[-1])
    assert returned["default"] > 100 and returned["keep"] < 28, returned


@pytest.fixture
def opt_ins(monkeypatch):
    """Records the devices for which the allocator setting is asked for, without applying it to this process."""
    calls = []
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: calls.append("applied") or True)
    real = runtime.keep_freed_memory_on_cpu
    monkeypatch.setattr(runtime, "keep_freed_memory_on_cpu", lambda device: calls.append(device) or real(device))
    return calls


def test_loading_a_matter_on_the_cpu_leaves_the_allocator_alone(opt_ins, tmp_path):
    checkpoint = tmp_path / "tiny.safetensors"
    save_file(build_model(BiRefNetConfig.tiny()).state_dict(), str(checkpoint))
    matter = pipeline.Matter(weights=checkpoint, device="cpu", allow_fallback=False)
    assert matter.engine != pipeline.FALLBACK and matter.predict(draw_toon(64, 64)[0]).alpha.shape == (64, 64)
    assert opt_ins == []


def test_the_command_line_opts_in_for_model_commands_on_the_cpu(opt_ins, tmp_path, monkeypatch):
    from toonmatte.cli import main

    monkeypatch.delenv(runtime.OPT_OUT_ENV)  # the suite opts out (conftest); the recorder stands in for the setting

    checkpoint = tmp_path / "tiny.safetensors"
    save_file(build_model(BiRefNetConfig.tiny()).state_dict(), str(checkpoint))
    image = tmp_path / "toon.png"
    Image.fromarray(draw_toon(64, 64)[0]).save(image)
    assert main(["predict", str(image), "--out", str(tmp_path / "out"), "--weights", str(checkpoint),
                 "--device", "cpu"]) == 0
    assert opt_ins == ["cpu", "applied"]
    opt_ins.clear()
    main(["split", str(tmp_path / "no-dataset")])  # a command without the model, whatever it makes of the folder
    assert opt_ins == []


def test_the_opt_in_follows_the_device_and_the_opt_out(opt_ins, monkeypatch):
    assert runtime.keep_freed_memory_on_cpu("cpu") is False  # the suite's opt-out (conftest)
    assert opt_ins == ["cpu"]
    monkeypatch.delenv(runtime.OPT_OUT_ENV)
    assert runtime.keep_freed_memory_on_cpu("cuda") is False
    assert runtime.keep_freed_memory_on_cpu("not-a-device") is False
    assert opt_ins == ["cpu", "cuda", "not-a-device"]  # no setting applied for any of them
    assert runtime.keep_freed_memory_on_cpu("cpu") is True and opt_ins[-1] == "applied"


def test_bf16_fast_path_matches_fp32_on_the_optimized_model():
    torch.manual_seed(0)
    model = optimize_for_inference(build_model(BiRefNetConfig.tiny()))
    rgb, _ = draw_toon(96, 128)
    x = preprocess(rgb, (128, 192))[None]
    with torch.inference_mode():
        fp32 = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(x)
    # the output head sums its terms in float32; everything before it ran in bf16
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32) and torch.isfinite(bf16).all()
    a32 = postprocess(fp32[0], (96, 128)).astype(int)
    a16 = postprocess(bf16[0], (96, 128)).astype(int)
    assert np.abs(a32 - a16).mean() <= 1.0
    assert np.abs(a32 - a16).max() <= 8


def test_the_studio_opts_in_when_its_engine_loads(opt_ins, tmp_path, monkeypatch):
    from annotate.engine import Engine

    monkeypatch.delenv(runtime.OPT_OUT_ENV)
    checkpoint = tmp_path / "tiny.safetensors"
    save_file(build_model(BiRefNetConfig.tiny()).state_dict(), str(checkpoint))
    plain = Engine(weights=str(checkpoint), device="cpu")
    plain.start().get()
    assert opt_ins == []  # an Engine, like a Matter, leaves the allocator alone unless told
    studio = Engine(weights=str(checkpoint), device="cpu", keep_freed_memory=True)  # as annotate.web.main builds it
    assert studio.start().get().engine != pipeline.FALLBACK
    assert opt_ins == ["cpu", "applied"]
