"""Swin Transformer v1 backbone as BiRefNet uses it (the detection variant).

The detection variant differs from the classification one in ways that matter for
numerical equivalence: feature maps are zero-padded to the window size *after*
``norm1`` (so padded tokens join attention unmasked), each stage's output is taken
before its patch merging and passed through its own LayerNorm (``norm0..3``), and the
shift mask is built on the padded grid.

Attention runs through ``F.scaled_dot_product_attention`` with the relative position
bias (and, in shifted blocks, the shift mask) folded into one additive mask.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

SHIFT_MASK_VALUE = -100.0  # the ToonOut code's value; -inf upstream gives the same softmax


def relative_position_index(window: int) -> torch.Tensor:
    """Index into the (2w-1)^2 bias table for every (query, key) pair of a w x w window."""
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # 2 x N
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)  # 2 x N x N
    return rel[0] * (2 * window - 1) + rel[1]


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """B x H x W x C -> (B * nW) x (window*window) x C, windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).transpose(2, 3)
    return x.reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW) x N x C -> B x H x W x C."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c).transpose(2, 3)
    return x.reshape(-1, h, w, c)


def shift_region_labels(hp: int, wp: int, window: int, shift: int) -> torch.Tensor:
    """Label the 9 regions of a padded hp x wp grid that a cyclic shift brings together."""
    labels = torch.zeros(hp, wp, dtype=torch.int64)
    bounds_h = (0, hp - window, hp - shift, hp)
    bounds_w = (0, wp - window, wp - shift, wp)
    label = 0
    for i in range(3):
        for j in range(3):
            labels[bounds_h[i]:bounds_h[i + 1], bounds_w[j]:bounds_w[j + 1]] = label
            label += 1
    return labels


@functools.lru_cache(maxsize=32)
def shift_mask(hp: int, wp: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """nW x N x N boolean: True where a query and key of one window come from different regions."""
    labels = shift_region_labels(hp, wp, window, shift).to(device)
    labels = window_partition(labels[None, :, :, None], window).squeeze(-1)  # nW x N
    return labels[:, None, :] != labels[:, :, None]


class WindowAttention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads = heads
        self.window = window
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def relative_bias(self) -> torch.Tensor:
        n = self.window * self.window
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, self.heads).permute(2, 0, 1)  # heads x N x N

    def forward(self, windows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """windows: (B*nW) x N x C; mask: additive, broadcastable to (B*nW) x heads x N x N."""
        bw, n, c = windows.shape
        qkv = self.qkv(windows).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def attention_mask(self, b: int, hp: int, wp: int, like: torch.Tensor) -> torch.Tensor:
        """The additive attention mask: relative bias, plus the shift mask in shifted blocks.

        Unshifted blocks return heads x N x N, which broadcasts over windows without a copy;
        shifted blocks need a per-window mask, (B*nW) x heads x N x N.
        """
        bias = self.attn.relative_bias().to(like.dtype)
        if not self.shift:
            return bias
        blocked = shift_mask(hp, wp, self.window, self.shift, like.device)  # nW x N x N, bool
        mask = bias.unsqueeze(0) + blocked.unsqueeze(1).to(like.dtype) * SHIFT_MASK_VALUE
        return mask.repeat(b, 1, 1, 1) if b > 1 else mask

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        pad_r, pad_b = (-w) % self.window, (-h) % self.window
        if pad_r or pad_b:
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = h + pad_b, w + pad_r
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = self.attn(window_partition(x, self.window), self.attention_mask(b, hp, wp, x))
        x = window_reverse(windows, self.window, hp, wp)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        if pad_r or pad_b:
            x = x[:, :h, :w, :]
        x = shortcut + x.reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, window: int, mlp_ratio: float, downsample: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio) for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """Returns (stage output before merging, input of the next stage, its height, its width)."""
        for block in self.blocks:
            x = block(x, h, w)
        if self.downsample is None:
            return x, x, h, w
        return x, self.downsample(x, h, w), (h + 1) // 2, (w + 1) // 2


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int = 4) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        h, w = x.shape[-2:]
        pad_r, pad_b = (-w) % self.patch, (-h) % self.patch
        if pad_r or pad_b:
            x = F.pad(x, (0, pad_r, 0, pad_b))
        x = self.proj(x)
        hp, wp = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), hp, wp


class SwinTransformer(nn.Module):
    """Returns the four stage outputs as NCHW maps at strides 4, 8, 16 and 32."""

    def __init__(self, embed_dim: int, depths: tuple[int, ...], heads: tuple[int, ...], window: int,
                 mlp_ratio: float) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(embed_dim)
        dims = [embed_dim * 2 ** i for i in range(len(depths))]
        self.layers = nn.ModuleList(
            SwinStage(dims[i], depths[i], heads[i], window, mlp_ratio, downsample=i < len(depths) - 1)
            for i in range(len(depths))
        )
        for i, dim in enumerate(dims):
            self.add_module(f"norm{i}", nn.LayerNorm(dim))
        self.channels = dims

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x, h, w = self.patch_embed(x)
        outs = []
        for i, stage in enumerate(self.layers):
            out, x, next_h, next_w = stage(x, h, w)
            out = getattr(self, f"norm{i}")(out)
            outs.append(out.view(-1, h, w, self.channels[i]).permute(0, 3, 1, 2).contiguous())
            h, w = next_h, next_w
        return outs
