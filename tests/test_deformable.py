import pytest
import torch
from torchvision.ops import deform_conv2d

from toonmatte.model import deformable
from toonmatte.model.deformable import gathered_deform_conv2d, grid_sampled_deform_conv2d, modulated_deform_conv2d

SAMPLERS = {"gathered": gathered_deform_conv2d, "grid-sampled": grid_sampled_deform_conv2d}


def deformable_inputs(channels: int = 6, height: int = 23, width: int = 17, kernel: int = 3, out_channels: int = 5,
                      batch: int = 1, seed: int = 0, spread: float = 4.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, height, width, generator=g)
    offset = spread * torch.randn(batch, 2 * kernel * kernel, height, width, generator=g)  # reaches past the borders
    mask = 2 * torch.rand(batch, kernel * kernel, height, width, generator=g)
    weight = torch.randn(out_channels, channels, kernel, kernel, generator=g)
    bias = torch.randn(out_channels, generator=g)
    return x, offset, weight, bias, mask


@pytest.fixture
def small_bands(monkeypatch):
    """Bands of a few rows, so that bands cross image boundaries within a batch; one image per CUDA chunk."""
    monkeypatch.setattr(deformable, "CPU_COLUMN_BUDGET", 6 * 9 * 17 * 4 * 3)
    monkeypatch.setattr(deformable, "CUDA_COLUMN_BUDGET", 1)


@pytest.mark.parametrize("kernel", [1, 3, 7])
@pytest.mark.parametrize("height", [23, 24, 5])
def test_matches_torchvision(small_bands, kernel, height):
    x, offset, weight, bias, mask = deformable_inputs(kernel=kernel, height=height, batch=2)
    expected = deform_conv2d(x, offset, weight, bias, padding=kernel // 2, mask=mask)
    with torch.no_grad():
        out = modulated_deform_conv2d(x, offset, weight, bias, mask, kernel // 2)
        no_bias = modulated_deform_conv2d(x, offset, weight, None, mask, kernel // 2)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(no_bias + bias.view(1, -1, 1, 1), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel", [1, 3, 7])
@pytest.mark.parametrize("batch", [1, 3])
def test_the_cuda_sampler_matches_torchvision_on_the_cpu_too(small_bands, kernel, batch):
    x, offset, weight, _, mask = deformable_inputs(kernel=kernel, batch=batch)
    expected = deform_conv2d(x, offset, weight, padding=kernel // 2, mask=mask)
    with torch.no_grad():
        out = grid_sampled_deform_conv2d(x, offset, weight, mask, kernel // 2)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_one_pixel_wide_maps_match_torchvision():
    """grid_sample cannot place samples on a side of one pixel; those maps take the gather on any device."""
    for height, width in ((1, 9), (7, 1)):
        x, offset, weight, bias, mask = deformable_inputs(kernel=3, height=height, width=width)
        with torch.no_grad():
            out = modulated_deform_conv2d(x, offset, weight, bias, mask, 1)
        torch.testing.assert_close(out, deform_conv2d(x, offset, weight, bias, padding=1, mask=mask),
                                   rtol=1e-4, atol=1e-4)


def test_one_band_matches_many():
    x, offset, weight, bias, mask = deformable_inputs(kernel=7, batch=3)
    with torch.no_grad():
        whole = modulated_deform_conv2d(x, offset, weight, bias, mask, 3)
    budget = deformable.CPU_COLUMN_BUDGET
    try:
        deformable.CPU_COLUMN_BUDGET = 1  # one row per band
        with torch.no_grad():
            rows = modulated_deform_conv2d(x, offset, weight, bias, mask, 3)
    finally:
        deformable.CPU_COLUMN_BUDGET = budget
    torch.testing.assert_close(rows, whole, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("position", [-1.0, -0.5, 0.0, 0.25, 16.0, 16.5, 17.0, 22.0, 22.75, 23.0, -7.0, 40.0])
def test_samples_at_and_past_the_borders_are_zero_padded_like_torchvision(sampler, position):
    """Every tap of every pixel samples the same point, placed on, near and past the edges."""
    x, _, weight, bias, mask = deformable_inputs(kernel=3)
    offset = torch.empty(1, 18, 23, 17)
    rows = torch.arange(23.0).view(1, 1, 23, 1)
    columns = torch.arange(17.0).view(1, 1, 1, 17)
    taps = torch.arange(9.0).view(1, 9, 1, 1)
    offset[:, 0::2] = position - rows - (taps // 3 - 1)  # vertical: the tap lands on row `position`
    offset[:, 1::2] = position / 2 - columns - (taps % 3 - 1)
    expected = deform_conv2d(x, offset, weight, padding=1, mask=mask)
    with torch.no_grad():
        out = SAMPLERS[sampler](x, offset, weight, mask, 1)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_channels_last_inputs_and_output():
    x, offset, weight, bias, mask = deformable_inputs(kernel=3)
    expected = deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    last = [t.contiguous(memory_format=torch.channels_last) for t in (x, offset, mask)]
    with torch.no_grad():
        out = modulated_deform_conv2d(last[0], last[1], weight, bias, last[2], 1)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_bf16_inputs_give_bf16_close_to_float32(sampler):
    x, offset, weight, _, mask = deformable_inputs(channels=32, kernel=3, out_channels=8, spread=1.5)
    expected = deform_conv2d(x, offset, weight, padding=1, mask=mask)
    with torch.no_grad():
        out = SAMPLERS[sampler](x.bfloat16(), offset.bfloat16(), weight, mask.bfloat16(), 1)
    assert out.dtype == torch.bfloat16
    error = (out.float() - expected).abs().mean() / expected.abs().mean()
    assert error < 0.02  # bf16 keeps 8 bits: a few parts in a thousand per value


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_non_finite_offsets_stay_inside_the_table(sampler):
    x, offset, weight, _, mask = deformable_inputs(kernel=3)
    offset[0, 0, 3, 4], offset[0, 1, 5, 6], offset[0, 2, 7, 8] = float("nan"), float("inf"), -float("inf")
    with torch.no_grad():
        out = SAMPLERS[sampler](x, offset, weight, mask, 1)
    assert out.shape == (1, 5, 23, 17)
    assert torch.isfinite(out[:, :, :3]).all()  # rows above the bad offsets are untouched


def test_shapes_that_do_not_fit_are_refused():
    x, offset, weight, bias, mask = deformable_inputs(kernel=3)
    with pytest.raises(ValueError, match="size-preserving"):
        modulated_deform_conv2d(x, offset[:, :, 1:-1, 1:-1], weight, bias, mask[:, :, 1:-1, 1:-1], 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kernel", [1, 3, 7])
def test_cuda_matches_torchvision(kernel):
    x, offset, weight, bias, mask = (t.cuda() for t in deformable_inputs(kernel=kernel, batch=2))
    expected = deform_conv2d(x, offset, weight, bias, padding=kernel // 2, mask=mask)
    with torch.inference_mode():
        out = modulated_deform_conv2d(x, offset, weight, bias, mask, kernel // 2)
        gathered = gathered_deform_conv2d(x, offset, weight, mask, kernel // 2) + bias.view(1, -1, 1, 1)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gathered, expected, rtol=1e-4, atol=1e-4)
