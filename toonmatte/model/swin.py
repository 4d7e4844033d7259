"""Swin Transformer v1 backbone as BiRefNet uses it (the detection variant).

The detection variant differs from the classification one in ways that matter for
numerical equivalence: feature maps are zero-padded to the window size *after*
``norm1`` (so padded tokens join attention unmasked), each stage's output is taken
before its patch merging and passed through its own LayerNorm (``norm0..3``), and the
shift mask is built on the padded grid.

Attention runs through ``F.scaled_dot_product_attention`` with the relative position
bias (and, in shifted blocks, the shift mask) folded into one additive mask. Padding,
cyclic shift and window partition (and their inverse) are single precomputed gathers.
Without autograd, each block builds a fresh residual stream and adds its MLP to it in
place, in chunks of tokens; in fp32 the residual additions ride on the GEMMs.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

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


@dataclass(frozen=True)
class WindowLayout:
    """Where every token goes for one block's window attention, precomputed per input size.

    Padding to whole windows, the cyclic shift and the window partition are one gather
    (``gather`` picks a row of the flattened B*H*W token matrix for every window slot;
    ``padding`` lists the slots that are padding); the way back, cropping included, is one
    gather too (``scatter``: the window slot of every token). Windows are ordered so that
    the ``interior`` ones, whose tokens all come from one region of the shifted grid, come
    first: they need only the relative bias. The rest also get ``shift_mask``.
    """

    gather: torch.Tensor  # (B*nW*N,) int64
    padding: torch.Tensor  # (P,) int64
    scatter: torch.Tensor  # (B*H*W,) int64
    interior: int
    shift_mask: torch.Tensor | None  # (B*nW - interior) x 1 x N x N additive float32, None when unshifted

    @property
    def padded_share(self) -> float:
        return len(self.padding) / len(self.gather)


@functools.lru_cache(maxsize=64)
@torch.inference_mode(False)  # cached: its tensors must serve later autograd passes too
def window_layout(b: int, h: int, w: int, window: int, shift: int, device: torch.device) -> WindowLayout:
    n = window * window
    hp, wp = h + (-h) % window, w + (-w) % window
    grid = torch.full((hp, wp), -1, dtype=torch.int64)
    grid[:h, :w] = torch.arange(h * w).view(h, w)
    grid = torch.roll(grid, shifts=(-shift, -shift), dims=(0, 1)) if shift else grid
    slots = window_partition(grid[None, :, :, None], window).view(-1, n)  # nW x N token per slot, -1 = padding
    if shift:
        labels = window_partition(shift_region_labels(hp, wp, window, shift)[None, :, :, None], window).view(-1, n)
        blocked = labels[:, None, :] != labels[:, :, None]  # nW x N x N
        masked = blocked.flatten(1).any(1)
    else:
        blocked, masked = None, torch.zeros(slots.shape[0], dtype=torch.bool)
    inner, outer = torch.nonzero(~masked).flatten(), torch.nonzero(masked).flatten()
    images = torch.arange(b).view(b, 1, 1) * (h * w)
    tokens = torch.cat([(slots[inner] + images).flatten(0, 1), (slots[outer] + images).flatten(0, 1)]).flatten()
    pad = torch.cat([slots[inner].expand(b, -1, -1).flatten(), slots[outer].expand(b, -1, -1).flatten()]) < 0
    scatter = torch.empty(b * h * w, dtype=torch.int64)
    scatter[tokens[~pad]] = torch.nonzero(~pad).flatten()
    shift_mask = None
    if blocked is not None:
        shift_mask = (blocked[outer].repeat(b, 1, 1).unsqueeze(1) * SHIFT_MASK_VALUE).to(device)
    return WindowLayout(
        gather=tokens.masked_fill(pad, 0).to(device),
        padding=torch.nonzero(pad).flatten().to(device),
        scatter=scatter.to(device),
        interior=b * len(inner),
        shift_mask=shift_mask,
    )


def _inference_fp32(x: torch.Tensor) -> bool:
    """True when in-place and fused variants may replace the plain ops: no autograd, no autocast."""
    return not torch.is_grad_enabled() and not torch.is_autocast_enabled(x.device.type)


class WindowAttention(nn.Module):
    relative_position_index: torch.Tensor  # a buffer

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

    def windows_qkv(self, tokens: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
        """(B*H*W) x C normalized tokens -> (B*nW*N) x 3C queries, keys and values per window slot.

        Padding tokens are zero after ``norm1``, so their projection is just the bias: with
        much padding (deep stages) the projection runs on the real tokens only and is then
        gathered; otherwise the narrower tokens are gathered first.
        """
        if layout.padded_share < 0.1:
            windows = tokens.index_select(0, layout.gather)
            if len(layout.padding):
                windows.index_fill_(0, layout.padding, 0.0)
            return self.qkv(windows)
        qkv = self.qkv(tokens).index_select(0, layout.gather)
        if len(layout.padding):
            bias = self.qkv.bias.to(qkv.dtype)
            qkv.index_copy_(0, layout.padding, bias.expand(len(layout.padding), -1))
        return qkv

    def forward(self, tokens: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
        """(B*H*W) x C normalized tokens -> (B*H*W) x C attention output, *before* ``proj``.

        The projection is per token, so the block applies it after cropping the padding.
        SDPA gets a 4-D additive mask (a 3-D one sends it down its slow reference path on
        the CPU): the bias alone, broadcast, for interior windows; bias plus shift mask for
        the others.
        """
        c = tokens.shape[-1]
        n = self.window * self.window
        qkv = self.windows_qkv(tokens, layout).view(-1, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        bias = self.relative_bias().to(q.dtype).contiguous().unsqueeze(0)  # SDPA wants contiguous masks
        i, windows = layout.interior, q.shape[0]
        parts = []
        if i:
            parts.append(F.scaled_dot_product_attention(q[:i], k[:i], v[:i], attn_mask=bias))
        if i < windows:
            assert layout.shift_mask is not None  # only shifted layouts have windows past the interior ones
            mask = bias + layout.shift_mask.to(q.dtype)
            parts.append(F.scaled_dot_product_attention(q[i:], k[i:], v[i:], attn_mask=mask))
        # SDPA's output is B x N x heads x d in memory: transposed back, it flattens without a copy.
        parts = [part.transpose(1, 2) for part in parts]
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
        return out.reshape(windows * n, c).index_select(0, layout.scatter)

    def forward_batched(self, tokens: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
        """B x (H*W) x C normalized tokens -> B x (H*W) x C attention output, *before* ``proj``, with
        the ``layout`` of one image applied to every image alike: the batch size never enters a
        shape that is computed in Python, so it stays symbolic in an exported graph (ONNX)."""
        b, _, c = tokens.shape
        n = self.window * self.window
        windows = tokens.index_select(1, layout.gather)
        if len(layout.padding):
            windows = windows.index_fill(1, layout.padding, 0.0)
        # (window, head) pairs as SDPA's heads: 4-D tensors, which ONNX's attention needs
        qkv = self.qkv(windows).view(b, -1, n, 3, self.heads, c // self.heads).permute(3, 0, 1, 4, 2, 5)
        q, k, v = (t.reshape(b, -1, n, c // self.heads) for t in qkv.unbind(0))  # B x (nW heads) x N x d
        mask = self.relative_bias()
        if layout.shift_mask is not None:  # interior windows first, then the ones with a shift mask
            mask = torch.cat([mask.expand(layout.interior, -1, -1, -1), mask + layout.shift_mask])
        mask = mask.expand(q.shape[1] // self.heads, -1, -1, -1).reshape(-1, n, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.view(b, -1, self.heads, n, c // self.heads).permute(0, 1, 3, 2, 4)
        return out.reshape(b, -1, c).index_select(1, layout.scatter)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))

    def add_to(self, x: torch.Tensor, inputs: torch.Tensor) -> None:
        """x += mlp(inputs), for 2-D fp32 inference: GELU in place, fc2 accumulated into x by the GEMM."""
        hidden = torch.ops.aten.gelu_(self.fc1(inputs))
        x.addmm_(hidden, self.fc2.weight.t()).add_(self.fc2.bias)


class SwinBlock(nn.Module):
    # tokens per MLP pass at inference: keeps the 4x-wide hidden layer small (in cache on a CPU;
    # on a GPU a few large GEMMs instead of many small launches)
    MLP_CHUNK = {"cpu": 4096, "cuda": 65536}

    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        if torch.compiler.is_exporting():
            return self.forward_exportable(x, h, w)
        b, _, c = x.shape
        layout = window_layout(b, h, w, self.window, self.shift, x.device)
        x = x.reshape(b * h * w, c)
        out = self.attn(self.norm1(x), layout)
        if torch.is_grad_enabled():
            x = x + self.attn.proj(out)
            return (x + self.mlp(self.norm2(x))).view(b, h * w, c)
        # Inference: a fresh residual stream, then the MLP added to it in place, chunk by chunk.
        if _inference_fp32(x):
            x = torch.addmm(x, out, self.attn.proj.weight.t()).add_(self.attn.proj.bias)
        else:
            x = x + self.attn.proj(out)
        step = self.MLP_CHUNK.get(x.device.type, self.MLP_CHUNK["cpu"])
        for start in range(0, x.shape[0], step):
            chunk = x[start:start + step]
            if _inference_fp32(x):
                self.mlp.add_to(chunk, self.norm2(chunk))
            else:
                chunk += self.mlp(self.norm2(chunk))
        return x.view(b, h * w, c)

    def forward_exportable(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """The block for ``torch.export`` (ONNX): plain ops, no Python loop over the tokens, and the
        window layout of one image, so that the batch size can stay dynamic. The layout must be in
        ``window_layout``'s cache already (computed from fake tensors, it would not be constant):
        ``toonmatte.model.onnx_export`` runs a real pass of one image before it traces."""
        layout = window_layout(1, h, w, self.window, self.shift, x.device)
        x = x + self.attn.proj(self.attn.forward_batched(self.norm1(x), layout))
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
        self.checkpointing = False  # see SwinTransformer.gradient_checkpointing

    def forward(self, x: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """Returns (stage output before merging, input of the next stage, its height, its width)."""
        for block in self.blocks:
            if self.checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, h, w, use_reentrant=False)
            else:
                x = block(x, h, w)
        if self.downsample is None:
            return x, x, h, w
        return x, self.downsample(x, h, w), (h + 1) // 2, (w + 1) // 2


class PatchEmbed(nn.Module):
    """The image cut into patch x patch squares, each projected to ``dim`` channels, then normalized.

    ``proj`` is the checkpoint's strided convolution; it is computed as one matrix multiply over
    the squares (the same sums): on the CPU that is quicker than the convolution, and on CUDA it
    avoids a bf16 convolution with 3 input channels, for which cuDNN has no tensor-core kernel.
    """

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
        b, c, p = x.shape[0], x.shape[1], self.patch
        hp, wp = x.shape[2] // p, x.shape[3] // p
        # b c (hp p) (wp p) -> b (hp wp) (c p p), the order of the flattened kernel
        squares = x.reshape(b, c, hp, p, wp, p).permute(0, 2, 4, 1, 3, 5).reshape(b, hp * wp, c * p * p)
        return self.norm(F.linear(squares, self.proj.weight.flatten(1), self.proj.bias)), hp, wp


class SwinTransformer(nn.Module):
    """Returns the four stage outputs as B x C x H x W maps (channels-last memory) at strides 4, 8, 16 and 32."""

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

    def gradient_checkpointing(self, enabled: bool = True) -> None:
        """Training: keep only each block's input and recompute the block in the backward pass
        (about a third more compute for far less activation memory; no effect without autograd)."""
        for stage in self.layers:
            cast(SwinStage, stage).checkpointing = enabled

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x, h, w = self.patch_embed(x)
        outs = []
        for i, stage in enumerate(self.layers):
            out, x, next_h, next_w = stage(x, h, w)
            out = getattr(self, f"norm{i}")(out)
            outs.append(out.view(-1, h, w, self.channels[i]).permute(0, 3, 1, 2))
            h, w = next_h, next_w
        return outs
