import pytest
import torch
import torch.nn.functional as F

from toonmatte.swin import PatchEmbed


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
