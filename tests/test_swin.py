import pytest
import torch
import torch.nn.functional as F

from toonmatte.model.swin import PatchEmbed


@pytest.mark.parametrize("height,width", [(64, 96), (62, 93)])  # the second is padded to whole patches
def test_patch_embedding_is_the_strided_convolution(height, width):
    torch.manual_seed(0)
    embed = PatchEmbed(16)
    x = torch.randn(2, 3, height, width)
    with torch.no_grad():
        tokens, hp, wp = embed(x)
        padded = F.pad(x, (0, (-width) % 4, 0, (-height) % 4))
        expected = embed.norm(embed.proj(padded).flatten(2).transpose(1, 2))
    assert (hp, wp) == (-(-height // 4), -(-width // 4))
    torch.testing.assert_close(tokens, expected, rtol=1e-5, atol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients():
    from toonmatte.model.swin import SwinTransformer

    torch.manual_seed(0)
    backbone = SwinTransformer(8, (2, 2), (1, 2), 4, 4.0)
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for checkpointing in (False, True):
        backbone.zero_grad()
        backbone.gradient_checkpointing(checkpointing)
        sum(out.square().mean() for out in backbone(x)).backward()
        grads.append([p.grad.clone() for p in backbone.parameters()])
    for plain, recomputed in zip(*grads):
        torch.testing.assert_close(recomputed, plain, rtol=0, atol=0)


def test_training_after_inference_mode_at_the_same_size():
    """The window layouts are cached per size; one made under ``inference_mode`` (as Matter runs on
    CUDA) must still serve a later training pass at that size in the same process."""
    from toonmatte.model.swin import SwinTransformer, window_layout

    torch.manual_seed(0)
    backbone = SwinTransformer(8, (2, 2), (1, 2), 4, 4.0)
    x = torch.randn(1, 3, 72, 72)  # a size no other test caches
    window_layout.cache_clear()
    with torch.inference_mode():
        backbone(x)
    sum(out.square().mean() for out in backbone(x)).backward()
    assert all(p.grad is not None for p in backbone.parameters())
