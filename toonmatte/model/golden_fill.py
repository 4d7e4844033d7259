"""Deterministic weights and input for checking the model against the reference logits.

The golden data (``tests/fixtures``, regenerated from the published implementation's outputs) was
computed with weights that depend only on each state-dict key, so any implementation whose keys and
shapes match the checkpoint gets the same numbers whatever order it builds its modules in:

- every floating-point entry draws from ``torch.Generator().manual_seed(crc32(f"{salt}:{key}"))``
  (zlib's CRC-32 of the UTF-8 text); integer entries (index buffers, counters) keep their values;
- by the key's last component: ``running_var`` is ``0.5 + U[0, 1)``, ``running_mean`` is
  ``0.1 * N(0, 1)``, ``relative_position_bias_table`` is ``0.02 * N(0, 1)``; otherwise an entry with
  two or more dimensions is ``N(0, 1) / sqrt(fan_in)`` (fan_in: the product of all sizes but the
  first), a one-dimensional ``weight`` is ``1 + 0.1 * N(0, 1)`` and anything else ``0.1 * N(0, 1)``,
  all in float32 and then cast to the entry's dtype;
- the input batch for an HxW image is ``N(0, 1)`` of shape (1, 3, H, W) from the seed of the key
  ``input``.

The arithmetic (float32, the scale applied before the offset, a division by the square root) is the
reference's, so the tensors are bit for bit the same. Used by the tests and by ``toonmatte bench``.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence

import torch

SALT = "toonmatte"


def _generator(salt: str, name: str) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(f"{salt}:{name}".encode()))


def fill_value(key: str, shape: Sequence[int], salt: str = SALT) -> torch.Tensor:
    """The float32 value of state-dict entry ``key`` of the given shape."""
    shape = tuple(shape)
    generator = _generator(salt, key)
    kind = key.rpartition(".")[2]
    if kind == "running_var":
        return torch.rand(shape, generator=generator).add(0.5)
    normal = torch.randn(shape, generator=generator)
    if kind == "running_mean":
        return normal.mul(0.1)
    if kind == "relative_position_bias_table":
        return normal.mul(0.02)
    if len(shape) >= 2:
        return normal.div(math.sqrt(math.prod(shape[1:])))
    if kind == "weight":
        return normal.mul(0.1).add(1.0)
    return normal.mul(0.1)


def fill_state_dict(state_dict: Mapping[str, torch.Tensor], salt: str = SALT) -> dict[str, torch.Tensor]:
    """A new state dict: each floating-point entry replaced by :func:`fill_value`, the others copied."""
    return {key: fill_value(key, value.shape, salt).to(value.dtype) if value.is_floating_point() else value.clone()
            for key, value in state_dict.items()}


def golden_input(height: int, width: int, salt: str = SALT) -> torch.Tensor:
    """The golden input batch (1, 3, height, width): normalized-image-like values."""
    return torch.randn((1, 3, height, width), generator=_generator(salt, "input"))
