import pytest
import torch
from torchvision.ops import deform_conv2d

from toonmatte import deformable
from toonmatte.deformable import band_layout, modulated_deform_conv2d


def deformable_inputs(channels: int = 6, height: int = 23, width: int = 17, kernel: int = 3, out_channels: int = 5,
                      batch: int = 1, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, height, width, generator=g)
    offset = 4 * torch.randn(batch, 2 * kernel * kernel, height, width, generator=g)  # reaches past the borders
    mask = 2 * torch.rand(batch, kernel * kernel, height, width, generator=g)
    weight = torch.randn(out_channels, channels, kernel, kernel, generator=g)
    bias = torch.randn(out_channels, generator=g)
    return x, offset, weight, bias, mask


@pytest.fixture
def always_banded(monkeypatch):
    """Every call is banded, with bands of a few rows."""
    monkeypatch.setattr(deformable, "MIN_BANDED_SAMPLES", 0)
    monkeypatch.setattr(deformable, "COLUMN_BUDGET", 6 * 9 * 17 * 4 * 3)


@pytest.mark.parametrize("height", [1, 2, 7, 23, 64, 255, 256])
@pytest.mark.parametrize("workers", [1, 2, 4])
def test_band_layout_gives_the_rows_its_stride_produces(height, workers):
    rows, stride = band_layout(height, 256, 64 * 49, workers)
    assert 1 <= rows <= height
    assert (height - 1) // stride + 1 == rows  # output rows of a size-preserving conv with this stride
    assert rows * 256 * 64 * 49 * 4 <= max(deformable.COLUMN_BUDGET, 256 * 64 * 49 * 4)
    if height >= 2 * workers:
        assert -(-height // rows) >= 2 * workers


@pytest.mark.parametrize("kernel", [1, 3, 7])
@pytest.mark.parametrize("height", [23, 24, 5])
def test_bands_match_one_torchvision_call(always_banded, kernel, height):
    x, offset, weight, bias, mask = deformable_inputs(kernel=kernel, height=height, batch=2)
    expected = deform_conv2d(x, offset, weight, bias, padding=kernel // 2, mask=mask)
    with torch.no_grad():
        out = modulated_deform_conv2d(x, offset, weight, bias, mask, kernel // 2)
        no_bias = modulated_deform_conv2d(x, offset, weight, None, mask, kernel // 2)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(no_bias + bias.view(1, -1, 1, 1), expected, rtol=1e-4, atol=1e-4)


def test_channels_last_inputs(always_banded):
    x, offset, weight, bias, mask = deformable_inputs(kernel=3)
    expected = deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    last = [t.contiguous(memory_format=torch.channels_last) for t in (x, offset, mask)]
    with torch.no_grad():
        out = modulated_deform_conv2d(last[0], last[1], weight, bias, last[2], 1)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_bands_run_under_the_callers_inference_mode(always_banded):
    """Worker threads take the caller's grad mode: parameters that require grad must not be recorded."""
    x, offset, weight, bias, mask = deformable_inputs()
    weight.requires_grad_(True)
    with torch.inference_mode():
        out = modulated_deform_conv2d(x, offset, weight, bias, mask, 1)
    assert out.grad_fn is None and out.is_inference()


def test_band_gradients_match_one_call(always_banded):
    tensors = [t.requires_grad_(True) for t in deformable_inputs(height=11, width=9)]
    x, offset, weight, bias, mask = tensors
    expected = torch.autograd.grad(deform_conv2d(x, offset, weight, bias, padding=1, mask=mask).square().sum(), tensors)
    got = torch.autograd.grad(modulated_deform_conv2d(x, offset, weight, bias, mask, 1).square().sum(), tensors)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("threads", [1, deformable.MAX_WORKERS * 2])
def test_any_thread_count(always_banded, threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x, offset, weight, bias, mask = deformable_inputs(kernel=7)
        with torch.no_grad():
            out = modulated_deform_conv2d(x, offset, weight, bias, mask, 3)
    finally:
        torch.set_num_threads(before)
    if threads > 1:
        assert max(deformable._pools) == deformable.MAX_WORKERS
    torch.testing.assert_close(out, deform_conv2d(x, offset, weight, bias, padding=3, mask=mask), rtol=1e-4, atol=1e-4)


def test_other_shapes_take_one_plain_call(always_banded):
    x, offset, weight, bias, mask = deformable_inputs(kernel=3)
    offset, mask = offset[:, :, 1:-1, 1:-1], mask[:, :, 1:-1, 1:-1]  # padding 0: a smaller output
    with torch.no_grad():
        out = modulated_deform_conv2d(x, offset, weight, bias, mask, 0)
    torch.testing.assert_close(out, deform_conv2d(x, offset, weight, bias, padding=0, mask=mask))
