"""BiRefNet (Swin-L v1, multi-scale 'cat' input, context features, ASPPDeformable decoder) as ToonOut uses it.

Module and parameter names follow the published checkpoint exactly, so its state dict
loads strictly (see ``toonmatte.model.weights``). Every channel count is derived from the
backbone's embedding width, which lets tests build a tiny variant of the same graph.
This module is the architecture as trained; ``toonmatte.model.inference`` rewrites a loaded
model for inference (BatchNorm folding, composed convolutions, half-precision weights).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from toonmatte.model.deformable import modulated_deform_conv2d
from toonmatte.model.swin import SwinTransformer

ASPP_DROPOUT = 0.5  # after each ASPP block in training, as in BiRefNet; identity at eval

@dataclass(frozen=True)
class BiRefNetConfig:
    """Architecture hyper-parameters; the defaults are ToonOut's (BiRefNet with Swin-L)."""

    embed_dim: int = 192
    depths: tuple[int, ...] = (2, 2, 18, 2)
    heads: tuple[int, ...] = (6, 12, 24, 48)
    window: int = 12
    mlp_ratio: float = 4.0
    decoder_channels: int = 64  # inner width of decoder blocks and patch-input blocks
    aspp_channels: int = 256
    gradient_channels: int = 16

    @classmethod
    def tiny(cls) -> BiRefNetConfig:
        """The same graph at a fraction of the size, for tests."""
        return cls(embed_dim=8, depths=(2, 2, 2, 2), heads=(1, 1, 2, 2), window=4,
                   decoder_channels=8, aspp_channels=8, gradient_channels=4)


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear with align_corners=True, as everywhere in BiRefNet; a no-op at the same size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


def image_patches(x: torch.Tensor, height: int) -> torch.Tensor:
    """Tile the image into a G x G grid (G = H / height) stacked as channels: b c (G h) (G w) -> b (c G G) h w.

    The result is in channels-last memory, like every feature map of the decoder.
    """
    b, c, h, w = x.shape
    grid = h // height
    ph, pw = h // grid, w // grid
    x = x.reshape(b, c, grid, ph, grid, pw).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(b, ph, pw, c * grid * grid).permute(0, 3, 1, 2)


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """A 1x1 convolution as one matrix multiply over channels-last pixels.

    PyTorch's CPU convolution takes a slow im2col path for 1x1 kernels; this is a plain
    GEMM, and returns channels-last memory.
    """
    return F.linear(x.permute(0, 2, 3, 1), weight.flatten(1), bias).permute(0, 3, 1, 2)


class Conv1x1(nn.Conv2d):
    """``nn.Conv2d`` with a 1x1 kernel (same parameters), computed by :func:`pointwise`."""

    def __init__(self, cin: int, cout: int, bias: bool = True) -> None:
        super().__init__(cin, cout, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pointwise(x, self.weight, self.bias)


def conv2d(cin: int, cout: int, kernel: int, bias: bool = True) -> nn.Conv2d:
    """A same-size convolution: :class:`Conv1x1` for 1x1 kernels."""
    if kernel == 1:
        return Conv1x1(cin, cout, bias=bias)
    return nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=bias)


def modulated_deformable(x: torch.Tensor, offset: torch.Tensor, modulator: torch.Tensor, conv: nn.Conv2d,
                         padding: int) -> torch.Tensor:
    """DCNv2 of ``x`` with ``conv``'s filters at the sampling points ``offset`` moves them to, each sample
    weighted by ``2 * sigmoid(modulator)``.

    Without autograd this is :func:`toonmatte.model.deformable.modulated_deform_conv2d`, which stays in
    the input's dtype and memory format. With autograd recording (training) it is torchvision's op,
    which has a backward, in float32 as its CUDA autocast wrapper would run it, on contiguous maps:
    its CUDA kernel is not known to read channels-last ones right.
    """
    mask = 2.0 * torch.sigmoid(modulator)
    weight, bias = conv.weight, conv.bias
    if not (torch.is_grad_enabled() and any(t.requires_grad for t in (x, offset, mask, weight))):
        return modulated_deform_conv2d(x, offset, weight, bias, mask, padding)
    nchw32: dict[str, Any] = {"dtype": torch.float32, "memory_format": torch.contiguous_format}
    return deform_conv2d(x.to(**nchw32), offset.to(**nchw32), weight.float(), None if bias is None else bias.float(),
                         padding=padding, mask=mask.to(**nchw32)).to(x.dtype)


class DeformableConv2d(nn.Module):
    """Modulated deformable convolution (DCNv2) with offset and modulator predicted from the input."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.padding = kernel // 2
        self.taps = kernel * kernel
        self.offset_conv = conv2d(cin, 2 * self.taps, kernel)
        self.modulator_conv = conv2d(cin, self.taps, kernel)
        self.regular_conv = conv2d(cin, cout, kernel, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return modulated_deformable(x, self.offset_conv(x), self.modulator_conv(x), self.regular_conv, self.padding)


class DeformableBranch(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        # nn.Module: optimize_for_inference swaps in a FusedDeformableConv2d and an Identity
        self.atrous_conv: nn.Module = DeformableConv2d(cin, cout, kernel)
        self.bn: nn.Module = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.atrous_conv(x)), inplace=True)


class ASPPDeformable(nn.Module):
    def __init__(self, channels: int, inner: int) -> None:
        super().__init__()
        self.aspp1 = DeformableBranch(channels, inner, 1)
        self.aspp_deforms = nn.ModuleList(DeformableBranch(channels, inner, k) for k in (1, 3, 7))
        self.global_avg_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), Conv1x1(channels, inner, bias=False), nn.BatchNorm2d(inner), nn.ReLU()
        )
        self.conv1: nn.Conv2d = Conv1x1(inner * 5, channels, bias=False)  # BatchNorm folded in at inference
        self.bn1: nn.Module = nn.BatchNorm2d(channels)  # an Identity at inference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``conv1`` over the five branches concatenated, computed as the sum of its five slices
        applied branch by branch (no concatenated copy; each branch is freed once added). The
        pooled branch is constant over the image, so its slice adds a per-channel constant.

        The sum is kept in float32 under autocast: rounding each partial sum to bf16 was the
        largest source of the decoder's bf16 error."""
        weight = self.conv1.weight
        inner = weight.shape[1] // 5
        out = None
        for i, branch in enumerate((self.aspp1, *self.aspp_deforms)):
            term = pointwise(branch(x), weight[:, i * inner:(i + 1) * inner])
            out = term.float() if out is None else out.add_(term)
        assert out is not None  # the loop ran: it has four branches
        out = out.add_(pointwise(self.global_avg_pool(x), weight[:, 4 * inner:]))
        if self.conv1.bias is not None:
            out = out.add_(self.conv1.bias.view(1, -1, 1, 1))
        return F.dropout(F.relu(self.bn1(out), inplace=True), ASPP_DROPOUT, self.training)


class BasicDecBlk(nn.Module):
    def __init__(self, cin: int, cout: int, inner: int, aspp: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(cin, inner, 3, padding=1)
        self.dec_att = ASPPDeformable(inner, aspp)
        self.conv_out = nn.Conv2d(inner, cout, 3, padding=1)
        self.bn_in: nn.Module = nn.BatchNorm2d(inner)  # Identities once folded (optimize_for_inference)
        self.bn_out: nn.Module = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn_in(self.conv_in(x)), inplace=True)
        return self.bn_out(self.conv_out(self.dec_att(x)))


class SimpleConvs(nn.Module):
    def __init__(self, cin: int, cout: int, inner: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, inner, 3, padding=1)
        self.conv_out = nn.Conv2d(inner, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv1(x))


class BasicLatBlk(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = Conv1x1(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def gradient_convs(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Decoder(nn.Module):
    """Coarse-to-fine decoder; ``channels`` are the encoder's widths, deepest first.

    Feature maps are kept in channels-last memory, where oneDNN's convolutions are
    fastest on the CPU and 1x1 convolutions are plain matrix multiplies.
    """

    PATCH_GRIDS = {5: 32, 4: 16, 3: 8, 2: 4}  # input tiling per patch-input block: G = H / level height

    def __init__(self, channels: list[int], inner: int, aspp: int, gradient: int) -> None:
        super().__init__()
        c0, c1, c2, c3 = channels
        ipt_out = {5: c0 // 8, 4: c0 // 8, 3: c1 // 8, 2: c2 // 8, 1: c3 // 8}
        for level, grid in self.PATCH_GRIDS.items():
            setattr(self, f"ipt_blk{level}", SimpleConvs(3 * grid * grid, ipt_out[level], inner))
        self.ipt_blk1: nn.Module = SimpleConvs(3, ipt_out[1], inner)  # a ComposedConvs at inference
        self.decoder_block4 = BasicDecBlk(c0 + ipt_out[5], c1, inner, aspp)
        self.decoder_block3 = BasicDecBlk(c1 + ipt_out[4], c2, inner, aspp)
        self.decoder_block2 = BasicDecBlk(c2 + ipt_out[3], c3, inner, aspp)
        self.decoder_block1 = BasicDecBlk(c3 + ipt_out[2], c3 // 2, inner, aspp)
        self.conv_out1 = nn.Sequential(Conv1x1(c3 // 2 + ipt_out[1], 1))
        self.lateral_block4 = BasicLatBlk(c1, c1)
        self.lateral_block3 = BasicLatBlk(c2, c2)
        self.lateral_block2 = BasicLatBlk(c3, c3)
        # Deep-supervision heads: used only in training, present in the checkpoint.
        for s, c in zip((4, 3, 2), (c1, c2, c3)):
            setattr(self, f"conv_ms_spvn_{s}", Conv1x1(c, 1))
        for s, c in zip((4, 3, 2), (c1, c2, c3)):
            setattr(self, f"gdt_convs_{s}", gradient_convs(c, gradient))
        for s in (4, 3, 2):
            setattr(self, f"gdt_convs_pred_{s}", nn.Sequential(Conv1x1(gradient, 1)))
        for s in (4, 3, 2):
            setattr(self, f"gdt_convs_attn_{s}", nn.Sequential(Conv1x1(gradient, 1)))

    def gradient_attention(self, p: torch.Tensor, stage: int, heads: list | None = None) -> torch.Tensor:
        g = getattr(self, f"gdt_convs_{stage}")(p)
        if heads is not None:  # training: the stage's side logits and gradient-map logits, for their losses
            heads.append((getattr(self, f"conv_ms_spvn_{stage}")(p), getattr(self, f"gdt_convs_pred_{stage}")(g)))
        return p * torch.sigmoid(getattr(self, f"gdt_convs_attn_{stage}")(g))

    def patch_input(self, x: torch.Tensor, level: int, like: torch.Tensor) -> torch.Tensor:
        return getattr(self, f"ipt_blk{level}")(image_patches(x, like.shape[-2]))

    def forward(self, x: torch.Tensor, features: list[torch.Tensor], heads: list | None = None) -> torch.Tensor:
        """Logits from the image and the encoder's ``features`` [x1, x2, x3, x4] (finest first).

        The list is emptied as the maps are used, and each level's input is freed before its
        block runs, so fewer full-size maps are alive at once through the finest block.
        A ``heads`` list receives the deep-supervision outputs of stages 4, 3 and 2 (training).
        """
        x4 = features.pop()
        p = self.decoder_block4(torch.cat([x4, self.patch_input(x, 5, x4)], dim=1))
        del x4
        p = self.gradient_attention(p, 4, heads)
        for stage, block, lateral, grid in ((3, self.decoder_block3, self.lateral_block4, 4),
                                            (2, self.decoder_block2, self.lateral_block3, 3),
                                            (1, self.decoder_block1, self.lateral_block2, 2)):
            skip = features.pop()
            p = resize(p, skip.shape[-2:]) + lateral(skip)
            p = torch.cat([p, self.patch_input(x, grid, skip)], dim=1)
            del skip
            p = block(p)
            if stage > 1:
                p = self.gradient_attention(p, stage, heads)
        return self.head(p, x)

    def head(self, p1: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``conv_out1`` over [p1 upsampled to the input's size, ipt_blk1(x)], as the sum of its
        two slices, the p1 one applied *before* upsampling: both are linear, and this resizes
        one channel instead of all of p1's at full size."""
        image = self.ipt_blk1(x.contiguous(memory_format=torch.channels_last))
        conv = cast(Conv1x1, self.conv_out1[0])
        c = p1.shape[1]
        logits = resize(pointwise(p1, conv.weight[:, :c]), x.shape[-2:])
        return logits + pointwise(image, conv.weight[:, c:], conv.bias)


class BiRefNet(nn.Module):
    """``model(x)`` maps a normalized B x 3 x H x W batch (H, W multiples of 32) to B x 1 x H x W logits."""

    def __init__(self, config: BiRefNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or BiRefNetConfig()
        self.bb = SwinTransformer(config.embed_dim, config.depths, config.heads, config.window, config.mlp_ratio)
        # Multi-scale 'cat' input doubles every backbone width; deepest first.
        channels = [2 * c for c in reversed(self.bb.channels)]
        self.squeeze_module = nn.Sequential(
            BasicDecBlk(sum(channels), channels[0], config.decoder_channels, config.aspp_channels)
        )
        self.decoder = Decoder(channels, config.decoder_channels, config.aspp_channels, config.gradient_channels)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = x.shape[-2:]
        full = self.bb(x)
        half = self.bb(resize(x, (h // 2, w // 2)))
        x1, x2, x3, x4 = (torch.cat([f, resize(g, f.shape[-2:])], dim=1) for f, g in zip(full, half))
        size = x4.shape[-2:]
        x4 = torch.cat([resize(x1, size), resize(x2, size), resize(x3, size), x4], dim=1)
        return [x1, x2, x3, self.squeeze_module(x4)]

    def forward(self, x: torch.Tensor, supervision: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """The logits; with ``supervision`` (training) also, for stages 4, 3 and 2 (coarse to fine),
        the side logits of ``conv_ms_spvn_s`` and the gradient-map logits of ``gdt_convs_pred_s``,
        each at its stage's resolution: the heads the checkpoint carries for BiRefNet's losses."""
        if not supervision:
            return self.decoder(x, self.encode(x))
        heads: list[tuple[torch.Tensor, torch.Tensor]] = []
        logits = self.decoder(x, self.encode(x), heads)
        return logits, heads


def build_model(config: BiRefNetConfig | None = None) -> BiRefNet:
    """A BiRefNet in eval mode (ToonOut's architecture by default), with untrained weights."""
    return BiRefNet(config).eval()


def config_from_state_dict(state: dict[str, torch.Tensor]) -> BiRefNetConfig:
    """Read the architecture's hyper-parameters off a (prefix-stripped) checkpoint.

    This lets a checkpoint of any width and depth (such as the tiny test models) load into
    a matching graph; ToonOut's own checkpoint yields the default configuration.
    """
    def shape(key: str) -> tuple[int, ...]:
        return tuple(state[key].shape)

    embed_dim = shape("bb.patch_embed.proj.weight")[0]
    stages = sorted({int(k.split(".")[2]) for k in state if k.startswith("bb.layers.")})
    depths = tuple(
        len({k.split(".")[4] for k in state if k.startswith(f"bb.layers.{i}.blocks.")}) for i in stages
    )
    heads = tuple(shape(f"bb.layers.{i}.blocks.0.attn.relative_position_bias_table")[1] for i in stages)
    table_rows = shape("bb.layers.0.blocks.0.attn.relative_position_bias_table")[0]
    window = (round(table_rows ** 0.5) + 1) // 2
    return BiRefNetConfig(
        embed_dim=embed_dim,
        depths=depths,
        heads=heads,
        window=window,
        mlp_ratio=shape("bb.layers.0.blocks.0.mlp.fc1.weight")[0] / embed_dim,
        decoder_channels=shape("decoder.ipt_blk1.conv1.weight")[0],
        aspp_channels=shape("squeeze_module.0.dec_att.aspp1.atrous_conv.regular_conv.weight")[0],
        gradient_channels=shape("decoder.gdt_convs_4.0.weight")[0],
    )
