import pytest
import torch
from torchvision.ops import deform_conv2d

from toonmatte import deformable
from toonmatte.deformable import channel_slices, modulated_deform_conv2d


def deformable_inputs(channels: int = 12, size: int = 20, kernel: int = 3, out_channels: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, channels, size, size, generator=g)
    offset = 3 * torch.randn(1, 2 * kernel * kernel, size, size, generator=g)  # reaches past the borders
    mask = 2 * torch.rand(1, kernel * kernel, size, size, generator=g)
    weight = torch.randn(out_channels, channels, kernel, kernel, generator=g)
    bias = torch.randn(out_channels, generator=g)
    return x, offset, weight, bias, mask


@pytest.fixture
def always_split(monkeypatch):
    """Make every call take the sliced, threaded path (slices of about a quarter of 12 channels)."""
    monkeypatch.setattr(deformable, "MIN_PARALLEL_SAMPLES", 0)
    monkeypatch.setattr(deformable, "COLUMN_BUDGET", 3 * 9 * 20 * 20 * 4)


@pytest.mark.parametrize("channels,workers", [(64, 2), (64, 1), (12, 4), (3, 4), (1, 2)])
def test_channel_slices_cover_every_channel_once_within_budget(channels, workers):
    samples_per_channel = 49 * 256 * 256
    slices = channel_slices(channels, samples_per_channel, workers)
    assert [c for s in slices for c in range(s.start, s.stop)] == list(range(channels))
    assert len(slices) >= min(channels, workers)
    if len(slices) < channels:
        assert len(slices) % workers == 0
        assert max(s.stop - s.start for s in slices) * samples_per_channel * 4 <= 1.25 * deformable.COLUMN_BUDGET


def test_large_7x7_is_split_so_no_column_buffer_exceeds_the_budget():
    slices = channel_slices(64, 49 * 256 * 256, 2)  # ToonOut's 7x7 branch at a quarter of 1024
    assert len(slices) == 4
    assert all((s.stop - s.start) * 49 * 256 * 256 * 4 <= deformable.COLUMN_BUDGET for s in slices)


@pytest.mark.parametrize("kernel", [1, 3, 7])
def test_split_matches_one_torchvision_call(always_split, kernel):
    x, offset, weight, bias, mask = deformable_inputs(kernel=kernel)
    expected = deform_conv2d(x, offset, weight, bias, padding=kernel // 2, mask=mask)
    with torch.no_grad():
        out = modulated_deform_conv2d(x, offset, weight, bias, mask, kernel // 2)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)
    with torch.no_grad():
        no_bias = modulated_deform_conv2d(x, offset, weight, None, mask, kernel // 2)
    torch.testing.assert_close(no_bias + bias.view(1, -1, 1, 1), expected, rtol=1e-5, atol=1e-4)


def test_split_runs_under_the_callers_inference_mode(always_split):
    """Worker threads take the caller's grad mode: parameters that require grad must not be recorded."""
    x, offset, weight, bias, mask = deformable_inputs()
    weight.requires_grad_(True)
    with torch.inference_mode():
        out = modulated_deform_conv2d(x, offset, weight, bias, mask, 1)
    assert out.grad_fn is None and out.is_inference()


def test_split_gradients_match_one_call(always_split):
    tensors = [t.requires_grad_(True) for t in deformable_inputs(channels=6, size=9)]
    x, offset, weight, bias, mask = tensors
    expected = torch.autograd.grad(deform_conv2d(x, offset, weight, bias, padding=1, mask=mask).square().sum(), tensors)
    got = torch.autograd.grad(modulated_deform_conv2d(x, offset, weight, bias, mask, 1).square().sum(), tensors)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_single_thread_still_splits_over_budget(always_split):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, offset, weight, bias, mask = deformable_inputs(kernel=7)
        with torch.no_grad():
            out = modulated_deform_conv2d(x, offset, weight, bias, mask, 3)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(out, deform_conv2d(x, offset, weight, bias, padding=3, mask=mask), rtol=1e-5, atol=1e-4)


def test_workers_are_capped_so_buffers_do_not_grow_with_the_core_count(always_split):
    threads = torch.get_num_threads()
    torch.set_num_threads(deformable.MAX_WORKERS * 2)
    try:
        x, offset, weight, bias, mask = deformable_inputs(channels=16)
        with torch.no_grad():
            out = modulated_deform_conv2d(x, offset, weight, bias, mask, 1)
    finally:
        torch.set_num_threads(threads)
    assert max(deformable._pools) == deformable.MAX_WORKERS
    torch.testing.assert_close(out, deform_conv2d(x, offset, weight, bias, padding=1, mask=mask), rtol=1e-5, atol=1e-4)
