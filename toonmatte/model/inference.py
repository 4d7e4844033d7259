"""Rewrites of a loaded BiRefNet that make it cheaper to run and keep its logits.

:func:`optimize_for_inference` folds every BatchNorm into the convolution before it
(``torch.nn.utils.fusion.fuse_conv_bn_eval``), computes each deformable convolution's offset
and modulator convolutions as one, composes the output head's 1x1 convolution into the
linear convolutions that feed it and ``ipt_blk1``'s two 3x3 convolutions into one 5x5, and
drops the training-only deep-supervision heads. :func:`store_weights_in` then stores the
weights in half precision for a model that runs under autocast. The rewritten model computes
the same logits up to float rounding, but its state dict no longer matches the checkpoint
and it cannot be trained: load the weights first (``toonmatte.model.weights``).
"""
from __future__ import annotations

from typing import TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from toonmatte.model.birefnet import (
    ASPPDeformable,
    BasicDecBlk,
    BiRefNet,
    Conv1x1,
    Decoder,
    DeformableBranch,
    DeformableConv2d,
    SimpleConvs,
    conv2d,
    modulated_deformable,
    resize,
)

TENSOR_CORE_MULTIPLE = 8  # output channels cuDNN's half-precision tensor-core kernels want

M = TypeVar("M", bound=nn.Module)


class FusedDeformableConv2d(nn.Module):
    """A :class:`DeformableConv2d` whose offset and modulator convolutions, which read the same input
    with the same kernel size, run as one convolution with both sets of filters: the input is read
    and unfolded once instead of twice. Zero filters pad the output channels to a multiple of
    :data:`TENSOR_CORE_MULTIPLE`, since cuDNN runs other half-precision channel counts (3 x taps) on
    kernels without tensor cores."""

    def __init__(self, conv: DeformableConv2d) -> None:
        super().__init__()
        self.padding, self.taps = conv.padding, conv.taps
        first, second = conv.offset_conv, conv.modulator_conv
        channels = first.out_channels + second.out_channels
        padding = -channels % TENSOR_CORE_MULTIPLE
        fused = conv2d(first.in_channels, channels + padding, first.kernel_size[0])
        weight, bias = first.weight, first.bias
        assert bias is not None and second.bias is not None  # conv2d's default: both have biases
        fused.weight = nn.Parameter(torch.cat([weight, second.weight, weight.new_zeros(padding, *weight.shape[1:])]),
                                    requires_grad=False)
        fused.bias = nn.Parameter(torch.cat([bias, second.bias, bias.new_zeros(padding)]), requires_grad=False)
        self.offset_modulator_conv = fused.to(weight.device)
        self.regular_conv = conv.regular_conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        both = self.offset_modulator_conv(x)
        offset, modulator = both[:, :2 * self.taps], both[:, 2 * self.taps:3 * self.taps]
        return modulated_deformable(x, offset, modulator, self.regular_conv, self.padding)


class ComposedConvs(nn.Module):
    """Stand-in for a :class:`SimpleConvs` (two 3x3 convolutions, no activation between them):
    one 5x5 convolution with the composed kernel, exact away from the border, where the first
    convolution's zero padding differs; the outermost rows and columns are recomputed through the
    two convolutions on thin strips. Worth it for a wide middle layer on a few channels at full
    resolution (``ipt_blk1``: 3 channels in, one out once the head is composed into it).
    """

    def __init__(self, convs: SimpleConvs) -> None:
        super().__init__()
        first, second = convs.conv1, convs.conv_out
        assert first.bias is not None and second.bias is not None  # SimpleConvs' convolutions have biases
        w1, w2 = first.weight.double(), second.weight.double()  # M x C x 3 x 3, O x M x 3 x 3
        # composed[o, c] = sum over m of the full (true) 2-D convolution of w2[o, m] with w1[m, c]:
        # cross-correlation with the flipped kernel.
        composed = F.conv2d(w2, w1.flip(-1, -2).permute(1, 0, 2, 3), padding=2)  # O x C x 5 x 5
        self.weight = nn.Parameter(composed.to(first.weight.dtype), requires_grad=False)
        self.bias = nn.Parameter((second.bias.double() + w2.sum((2, 3)) @ first.bias.double()).to(first.weight.dtype),
                                 requires_grad=False)
        self.convs = convs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Always in float32, autocast or not: a few input channels make it cheap, and in the
        half-precision path its output is a share of the final logits (see :class:`FoldedDecoder`)."""
        with torch.autocast(x.device.type, enabled=False):
            return self._forward(x.float())

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and self.weight.shape[0] == 1:
            # cuDNN's kernels for one output channel are slow; a depthwise convolution and a sum over
            # channels compute the same on its fast paths
            out = F.conv2d(x, self.weight.float().transpose(0, 1), padding=2, groups=x.shape[1])
            out = out.sum(1, keepdim=True).add_(self.bias.float().view(1, 1, 1, 1))
        else:
            out = F.conv2d(x, self.weight.float(), self.bias.float(), padding=2)
        h, w = x.shape[-2:]
        if h < 3 or w < 3:
            return self.convs(x)
        out[:, :, :1] = self.convs(x[:, :, :3])[:, :, :1]
        out[:, :, -1:] = self.convs(x[:, :, -3:])[:, :, -1:]
        out[:, :, :, :1] = self.convs(x[:, :, :, :3])[:, :, :, :1]
        out[:, :, :, -1:] = self.convs(x[:, :, :, -3:])[:, :, :, -1:]
        return out


class Float32Conv2d(nn.Conv2d):
    """A convolution that runs in float32 under autocast too. For the one-channel convolutions
    the output head is composed into: their outputs are the two terms of the logits, often large and
    of opposite signs, and bf16's rounding of them would move alphas near 0.5 by a level or more;
    in float32 they cost next to nothing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float())


class FoldedDecoder(Decoder):
    """A :class:`Decoder` whose output head ``conv_out1`` is composed into the convolutions before it
    (see :func:`optimize_for_inference`): ``decoder_block1`` and ``ipt_blk1`` each give one float32
    channel, and the logits are their sum, ``decoder_block1``'s upsampled to the input's size."""

    def head(self, p1: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        image = self.ipt_blk1(x.contiguous(memory_format=torch.channels_last))
        return resize(p1, x.shape[-2:]) + image


def fold_batch_norm(conv: nn.Module, bn: nn.Module) -> nn.Conv2d:
    """A copy of ``conv`` (same class) that computes ``bn(conv(x))`` with ``bn``'s inference statistics.

    Typed as the model's attributes are (this rewrite swaps them for other modules): in a model not
    rewritten yet, ``conv`` is a convolution and ``bn`` a BatchNorm."""
    assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d), "the model is rewritten already"
    return fuse_conv_bn_eval(conv, bn)


def compose_1x1(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None = None) -> Float32Conv2d:
    """A conv computing ``conv2d(conv(x), weight, bias)`` for a 1x1 ``weight`` (O x conv.out_channels x 1 x 1)."""
    mix = weight.double().flatten(1)  # O x M
    # a Conv2d's kernel_size and padding are pairs (or a padding mode); the stubs type _ConvNd's, of any length
    composed = Float32Conv2d(conv.in_channels, mix.shape[0],
                             conv.kernel_size, padding=conv.padding)  # type: ignore[arg-type]
    composed.weight = nn.Parameter(torch.einsum("om,mikl->oikl", mix, conv.weight.double()).to(conv.weight.dtype))
    total = mix @ conv.bias.double() if conv.bias is not None else torch.zeros(mix.shape[0], dtype=torch.float64)
    if bias is not None:
        total = total + bias.double()
    composed.bias = nn.Parameter(total.to(conv.weight.dtype))
    return composed.to(conv.weight.device)


@torch.no_grad()
def optimize_for_inference(model: BiRefNet) -> BiRefNet:
    """Rewrite a model whose weights are loaded, in place, for inference only; returns it.

    Every BatchNorm is folded into the convolution before it; the output head's 1x1
    convolution is composed into the two linear 3x3 convolutions that feed it (so
    ``decoder_block1`` and ``ipt_blk1`` produce one channel each), and ``ipt_blk1``'s two
    convolutions into one 5x5 (:class:`ComposedConvs`); each deformable convolution becomes a
    :class:`FusedDeformableConv2d`; the training-only deep-supervision heads are dropped.
    """
    model.eval()
    for module in list(model.modules()):
        if isinstance(module, BasicDecBlk):
            module.conv_in = fold_batch_norm(module.conv_in, module.bn_in)
            module.conv_out = fold_batch_norm(module.conv_out, module.bn_out)
            module.bn_in, module.bn_out = nn.Identity(), nn.Identity()
        elif isinstance(module, DeformableBranch):
            conv = module.atrous_conv
            assert isinstance(conv, DeformableConv2d), "the model is rewritten already"
            conv.regular_conv = fold_batch_norm(conv.regular_conv, module.bn)
            module.bn = nn.Identity()
            module.atrous_conv = FusedDeformableConv2d(conv)
        elif isinstance(module, ASPPDeformable):
            module.conv1 = fold_batch_norm(module.conv1, module.bn1)
            module.bn1 = nn.Identity()
            pool = module.global_avg_pool
            pool[1] = fold_batch_norm(pool[1], pool[2])
            pool[2] = nn.Identity()
    decoder = model.decoder
    for s in (4, 3, 2):
        convs = getattr(decoder, f"gdt_convs_{s}")
        convs[0] = fold_batch_norm(convs[0], convs[1])
        convs[1] = nn.Identity()
        delattr(decoder, f"conv_ms_spvn_{s}")
        delattr(decoder, f"gdt_convs_pred_{s}")
    head = cast(Conv1x1, decoder.conv_out1[0])
    c = decoder.decoder_block1.conv_out.out_channels
    decoder.decoder_block1.conv_out = compose_1x1(decoder.decoder_block1.conv_out, head.weight[:, :c])
    ipt_blk1 = decoder.ipt_blk1
    assert isinstance(ipt_blk1, SimpleConvs), "the model is rewritten already"
    ipt_blk1.conv_out = compose_1x1(ipt_blk1.conv_out, head.weight[:, c:], head.bias)
    decoder.ipt_blk1 = ComposedConvs(ipt_blk1)
    del decoder.conv_out1
    decoder.__class__ = FoldedDecoder  # the same modules; only the head's arithmetic changes
    return model


def store_weights_in(model: M, dtype: torch.dtype) -> M:
    """Store the weights of the linear and convolution layers in ``dtype``, in place; returns ``model``.

    For an inference model that runs under autocast to ``dtype``: autocast casts float32 weights
    on every use, which on CUDA is every replay of a CUDA graph. Layers that run in float32 on
    purpose keep float32 weights: the output head (:class:`Float32Conv2d`, :class:`ComposedConvs`)
    and the norms. The model then no longer runs without autocast.
    """
    float32 = {id(m) for parent in model.modules() if isinstance(parent, ComposedConvs) for m in parent.modules()}
    for module in model.modules():
        if type(module) in (nn.Linear, nn.Conv2d, Conv1x1) and id(module) not in float32:
            module.to(dtype)
    return model
