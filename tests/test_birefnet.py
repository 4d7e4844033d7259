"""The model's graph against the published checkpoint's keys and the reference implementation's logits."""
from __future__ import annotations

import copy
import hashlib

import numpy as np
import pytest
import torch

from conftest import FIXTURES, checkpoint_layout, read_gzip_json
from toonmatte.model.birefnet import BiRefNetConfig, DeformableConv2d, build_model, image_patches
from toonmatte.model.golden_fill import fill_state_dict, golden_input
from toonmatte.model.inference import (
    ComposedConvs,
    Float32Conv2d,
    FusedDeformableConv2d,
    optimize_for_inference,
    store_weights_in,
)
from toonmatte.model.swin import relative_position_index, shift_region_labels

GOLDEN_SIZES = [(256, 256), (384, 256)]
# The reference's own two code paths agree to about 2e-6; 1e-4 absolute is the tolerance for our logits. The
# full maps are stored in float16 (tests/fixtures/README.md): rounding to float16 moves a value v by at most
# half a unit in the last place, at most 2**-11 * |v| (10 stored mantissa bits), so the full-map check allows
# that on top; the float32 corners are checked at 1e-4 alone.
ATOL = 1e-4
FLOAT16_RTOL = 2.0 ** -11


@pytest.fixture(scope="module")
def toonout_model():
    """The full-size ToonOut graph with the golden deterministic weights (built once: ~3 GB, ~15 s)."""
    model = build_model()
    model.load_state_dict(fill_state_dict(model.state_dict(), salt="toonmatte"), strict=True)
    return model


@pytest.fixture(scope="module")
def reference_logits():
    return dict(np.load(FIXTURES / "forward.npz"))


def digest(array: np.ndarray, digits: int) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:digits]


def assert_matches_reference(logits: torch.Tensor, reference: dict, height: int, width: int) -> None:
    full = reference[f"logits_{height}x{width}"]
    assert full.dtype == np.float16 and logits.shape == full.shape
    np.testing.assert_allclose(logits.numpy(), full.astype(np.float32), rtol=FLOAT16_RTOL, atol=ATOL)
    corner = reference[f"corner_{height}x{width}"]
    assert corner.dtype == np.float32
    np.testing.assert_allclose(logits[..., :corner.shape[-2], :corner.shape[-1]].numpy(), corner, rtol=0, atol=ATOL)


def test_state_dict_matches_checkpoint_keys_shapes_and_dtypes(toonout_model):
    expected = checkpoint_layout()
    state = toonout_model.state_dict()
    assert list(state) == list(expected)
    for key, spec in expected.items():
        assert list(state[key].shape) == spec["shape"], key
        assert str(state[key].dtype).removeprefix("torch.") == spec["dtype"], key


def test_golden_weights_and_input_are_bit_identical_to_the_reference_fill(toonout_model):
    recorded = read_gzip_json("fill_digests.json.gz")
    assert recorded["salt"] == "toonmatte"
    digits = recorded["digits"]
    state = toonout_model.state_dict()
    floating = {key: value for key, value in state.items() if value.is_floating_point()}
    assert set(floating) == set(recorded["state_dict"])
    differ = [key for key, value in floating.items() if digest(value.numpy(), digits) != recorded["state_dict"][key]]
    assert not differ, f"{len(differ)} filled entries differ from the reference fill, e.g. {differ[:3]}"
    for height, width in GOLDEN_SIZES:
        assert digest(golden_input(height, width).numpy(), digits) == recorded["input"][f"{height}x{width}"]


@pytest.mark.parametrize("height,width", GOLDEN_SIZES)
def test_logits_match_reference_implementation(toonout_model, reference_logits, height, width):
    with torch.inference_mode():
        logits = toonout_model(golden_input(height, width))
    assert_matches_reference(logits, reference_logits, height, width)


@pytest.mark.parametrize("height,width", GOLDEN_SIZES)
def test_optimized_model_matches_reference_implementation(toonout_model, reference_logits, height, width):
    optimized = optimize_for_inference(copy.deepcopy(toonout_model))
    with torch.inference_mode():
        logits = optimized(golden_input(height, width))
    assert_matches_reference(logits, reference_logits, height, width)


def test_batched_images_get_the_same_logits_as_single_ones():
    # Two images in one batch exercise the per-batch window ordering of shifted blocks.
    model = build_model(BiRefNetConfig.tiny())
    x = torch.randn(2, 3, 96, 160)
    with torch.inference_mode():
        together = model(x)
        apart = torch.cat([model(x[:1]), model(x[1:])])
    torch.testing.assert_close(together, apart, rtol=0, atol=1e-5)


def test_optimized_tiny_model_matches_and_drops_training_heads():
    model = build_model(BiRefNetConfig.tiny())
    for module in model.modules():  # non-trivial BatchNorm statistics, so folding them matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    optimized = optimize_for_inference(copy.deepcopy(model))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in optimized.modules())
    assert not any(isinstance(m, DeformableConv2d) for m in optimized.modules())
    fused = [m for m in optimized.modules() if isinstance(m, FusedDeformableConv2d)]
    assert len(fused) == sum(isinstance(m, DeformableConv2d) for m in model.modules())
    assert all(m.offset_modulator_conv.out_channels % 8 == 0 for m in fused)  # tensor-core friendly
    assert not hasattr(optimized.decoder, "conv_ms_spvn_4") and not hasattr(optimized.decoder, "conv_out1")
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        torch.testing.assert_close(optimized(x), model(x), rtol=0, atol=1e-5)


def test_output_head_runs_in_float32_under_autocast():
    model = optimize_for_inference(build_model(BiRefNetConfig.tiny()))
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        reference, image_term = model(x), model.decoder.ipt_blk1(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast, fast_image_term = model(x), model.decoder.ipt_blk1(x)
    assert fast.dtype == torch.float32 and not torch.equal(fast, fast.bfloat16().float())  # not rounded to bf16
    assert torch.equal(fast_image_term, image_term)  # the image's term is computed exactly as in fp32
    assert (fast - reference).abs().max() < 0.1


def test_aspp_sums_its_branches_in_float32_under_autocast():
    aspp = optimize_for_inference(build_model(BiRefNetConfig.tiny())).decoder.decoder_block1.dec_att
    x = torch.randn(1, aspp.conv1.weight.shape[0], 24, 20)
    with torch.inference_mode():
        reference = aspp(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = aspp(x)
    assert reference.dtype == fast.dtype == torch.float32 and not torch.equal(fast, fast.bfloat16().float())
    torch.testing.assert_close(fast, reference, rtol=0.05, atol=0.05)


def test_weights_stored_in_bf16_keep_the_float32_head_and_the_autocast_result():
    model = optimize_for_inference(build_model(BiRefNetConfig.tiny()))
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        reference = model(x)
        store_weights_in(model, torch.bfloat16)
        stored = model(x)
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    assert dtypes["bb.patch_embed.proj.weight"] == dtypes["decoder.decoder_block4.conv_in.weight"] == torch.bfloat16
    float32 = [m for m in model.modules() if isinstance(m, (Float32Conv2d, ComposedConvs, torch.nn.LayerNorm))]
    assert float32 and all(p.dtype == torch.float32 for m in float32 for p in m.parameters())
    # autocast rounds float32 weights to the same bf16 values on every use
    torch.testing.assert_close(stored, reference, rtol=0, atol=1e-2)


def test_tiny_variant_has_the_same_graph_and_output_shape():
    model = build_model(BiRefNetConfig.tiny())
    full_keys = set(checkpoint_layout())
    # Same module tree (the tiny variant only has fewer blocks in stage 3 and narrower layers).
    tiny_keys = set(model.state_dict())
    assert tiny_keys <= full_keys
    assert {k.split(".")[0] for k in tiny_keys} == {k.split(".")[0] for k in full_keys}
    with torch.inference_mode():
        out = model(torch.randn(2, 3, 64, 96))
    assert out.shape == (2, 1, 64, 96)
    assert torch.isfinite(out).all()


def test_tiny_variant_is_trainable():
    model = build_model(BiRefNetConfig.tiny()).train()
    out = model(torch.randn(2, 3, 64, 64))  # BatchNorm needs >1 value per channel in training
    out.mean().backward()
    table = model.bb.layers[0].blocks[1].attn.relative_position_bias_table
    assert table.grad is not None and table.grad.abs().sum() > 0


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))])
def test_deformable_training_path_matches_inference(device):
    """With autograd recording, torchvision's op runs (it has a backward), on channels-last maps too."""
    torch.manual_seed(0)
    conv = DeformableConv2d(6, 5, 3).to(device)
    x = torch.randn(2, 6, 19, 13, device=device).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        inference = conv(x)
    training = conv(x)
    assert training.requires_grad
    training.square().sum().backward()
    assert conv.offset_conv.weight.grad.abs().sum() > 0  # the offsets learn through the sampling
    torch.testing.assert_close(training.detach(), inference, rtol=1e-4, atol=1e-4)


def test_image_patches_tile_the_image_into_channels():
    x = torch.arange(2 * 4 * 6, dtype=torch.float32).view(1, 2, 4, 6)
    patches = image_patches(x, height=2)  # G = 2: 2x2 grid of 2x3 tiles
    assert patches.shape == (1, 8, 2, 3)
    # channel c*G*G + row*G + col is tile (row, col) of channel c
    for c in range(2):
        for row in range(2):
            for col in range(2):
                tile = x[0, c, row * 2:(row + 1) * 2, col * 3:(col + 1) * 3]
                assert torch.equal(patches[0, c * 4 + row * 2 + col], tile)


def test_relative_position_index_and_shift_regions():
    index = relative_position_index(12)
    assert index.shape == (144, 144)
    # query (y1, x1) = (0, 0), key (y2, x2) = (11, 11): (0-11+11)*23 + (0-11+11) = 0
    assert index[0, 143] == 0
    assert index[143, 0] == 22 * 23 + 22
    assert index.diagonal().eq(11 * 23 + 11).all()
    labels = shift_region_labels(24, 24, 12, 6)
    assert labels[:12, :12].eq(0).all() and labels[12:18, 12:18].eq(4).all() and labels[18:, 18:].eq(8).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_composed_convs_on_cuda_match_the_cpu():
    # on CUDA the one-channel 5x5 runs as a depthwise convolution and a sum, in float32
    model = optimize_for_inference(build_model(BiRefNetConfig.tiny()))
    x = torch.randn(2, 3, 96, 80)
    with torch.inference_mode():
        cpu = model.decoder.ipt_blk1(x)
        gpu = model.decoder.ipt_blk1.cuda()(x.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=0, atol=5e-3)  # cuDNN may use TF32 for the border strips


def test_supervision_adds_the_training_heads_and_leaves_the_logits_alone():
    """Training reads the side and gradient-map logits of stages 4, 3, 2; the logits are those of the plain pass."""
    torch.manual_seed(0)
    model = build_model(BiRefNetConfig.tiny())
    x = torch.randn(2, 3, 96, 64)  # a shape no test runs under inference_mode: swin caches layouts per shape
    with torch.no_grad():
        plain = model(x)
        logits, heads = model(x, supervision=True)
    assert torch.equal(logits, plain)
    assert [(side.shape, gradient.shape) for side, gradient in heads] == [
        ((2, 1, h, w), (2, 1, h, w)) for h, w in ((3, 2), (6, 4), (12, 8))]
    model.train()
    logits, heads = model(x, supervision=True)
    sum(side.mean() + gradient.mean() for side, gradient in heads).backward()
    for stage in (4, 3, 2):
        assert model.decoder.get_submodule(f"conv_ms_spvn_{stage}").weight.grad.abs().sum() > 0
        assert model.decoder.get_submodule(f"gdt_convs_pred_{stage}")[0].weight.grad.abs().sum() > 0
