"""The grid_sample-based deformable convolution against torchvision's reference kernel."""
from __future__ import annotations

import pytest
import torch
from torchvision.ops import deform_conv2d as reference

import toonmatte.deform as deform


def random_case(batch: int, channels: int, out: int, kernel: int, height: int, width: int, spread: float,
                seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, height, width, generator=g)
    offset = spread * torch.randn(batch, 2 * kernel * kernel, height, width, generator=g)
    mask = 2 * torch.rand(batch, kernel * kernel, height, width, generator=g)
    weight = torch.randn(out, channels, kernel, kernel, generator=g) / (channels * kernel * kernel) ** 0.5
    bias = torch.randn(out, generator=g)
    return x, offset, mask, weight, bias


@pytest.mark.parametrize("kernel", [1, 3, 7])
@pytest.mark.parametrize("batch,height,width", [(1, 16, 16), (2, 13, 9), (1, 5, 40)])
def test_matches_torchvision(kernel, batch, height, width):
    # Offsets of several pixels send many samples across and beyond the borders.
    x, offset, mask, weight, bias = random_case(batch, 6, 5, kernel, height, width, spread=4.0)
    expected = reference(x, offset, weight, bias, padding=kernel // 2, mask=mask)
    got = deform.deform_conv2d(x, offset, weight, mask, kernel // 2, bias)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=2e-5)


def test_channels_last_inputs_and_chunking_give_the_same_result(monkeypatch):
    x, offset, mask, weight, _ = random_case(2, 8, 4, 3, 12, 10, spread=2.0, seed=1)
    expected = reference(x, offset, weight, padding=1, mask=mask)
    monkeypatch.setattr(deform, "SAMPLE_BUDGET", 8 * 9 * 7)  # 7-pixel chunks: many, ragged at the end
    cl = [t.contiguous(memory_format=torch.channels_last) for t in (x, offset, mask)]
    got = deform.deform_conv2d(cl[0], cl[1], weight, cl[2], 1)
    torch.testing.assert_close(got, expected, rtol=0, atol=2e-5)
    assert got.is_contiguous(memory_format=torch.channels_last)


def test_runs_under_bfloat16_autocast_with_float32_sampling():
    x, offset, mask, weight, bias = random_case(1, 8, 4, 3, 16, 16, spread=2.0, seed=2)
    expected = reference(x, offset, weight, bias, padding=1, mask=mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = deform.deform_conv2d(x.bfloat16(), offset.bfloat16(), weight, mask.bfloat16(), 1, bias)
    assert got.dtype == torch.bfloat16
    # bf16 inputs and products: a few parts in a hundred, not a wrong tap or position.
    assert (got.float() - expected).abs().max() < 0.1 * expected.abs().max()
