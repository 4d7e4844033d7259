"""The CPU fast path: when bf16 is picked, and that the optimized model runs in it close to fp32."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from conftest import draw_toon
from toonmatte import pipeline
from toonmatte.model import runtime
from toonmatte.model.birefnet import BiRefNetConfig, build_model, optimize_for_inference
from toonmatte.pipeline import pick_precision, postprocess, preprocess


@pytest.mark.parametrize("has_bf16,expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_cpu_follows_the_bf16_instructions(monkeypatch, has_bf16, expected):
    monkeypatch.setattr(pipeline, "cpu_supports_bf16", lambda: has_bf16)
    cpu = torch.device("cpu")
    assert pick_precision("auto", cpu) == expected
    assert pick_precision(None, cpu) == expected
    assert pick_precision("fp32", cpu) == "fp32"  # explicit choices stand
    assert pick_precision("bf16", cpu) == "bf16"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_takes_effect_on_glibc():
    assert runtime.keep_freed_memory() is True
    assert torch.ones(1 << 24).sum() == 1 << 24  # large allocations still work without mmap


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
