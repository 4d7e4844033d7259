"""Replaying a model's forward pass from captured CUDA graphs.

ToonOut's forward pass is thousands of kernel launches, most of them small (the Swin
blocks' norms, adds, gathers and window attention, twice: at full and at half size). On
a fast GPU, launching them one by one from Python costs more than running them; a
captured graph replays them with one launch.

The whole pass can be captured because its deformable convolutions are plain PyTorch
operations (``toonmatte.model.deformable``). torchvision's CUDA ``deform_conv2d``, which they
replace at inference, launches its sampling kernel outside the current stream: a graph
of the pass with it replayed wrong logits, so only the backbone
was captured then.

A graph is fixed to one input shape and keeps its own memory pool (the activations of
that pass), so one graph is kept per input shape and precision, for the few most recent.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

log = logging.getLogger(__name__)

_COUNTED_SHAPES = 64  # shapes whose eager calls are remembered before capture


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: torch.Tensor
    outputs: Any  # a tensor, or a list or tuple of tensors


def _clone(outputs: Any) -> Any:
    if isinstance(outputs, torch.Tensor):
        return outputs.clone()
    return type(outputs)(item.clone() for item in outputs)


class GraphedForward:
    """Call ``forward(x)`` through CUDA graphs, one captured per input shape and autocast state.

    ``forward`` must be a pure function of ``x`` on the GPU: no host synchronization and the
    same kernels on every call for a given shape, as an inference pass of the Swin backbone
    is. It may return a tensor or a list or tuple of tensors. A shape runs eagerly until its
    ``capture_on``-th call (the second by default), so one-off shapes (images of odd sizes
    through a dynamic-size model) cost no capture. To capture, ``forward`` first runs
    ``warmups`` times on a side stream (one-time initialization and per-shape caches happen
    outside the capture), then is recorded with autocast's weight-cast cache off: a cached
    cast would be a tensor the graph reads but does not own. From then on a call copies ``x``
    into the graph's input buffer, replays, and returns copies of the outputs. CPU inputs,
    and calls while autograd records, run ``forward`` directly.
    Not thread-safe: callers serialize calls (``Matter`` holds a lock).
    """

    def __init__(self, forward: Callable[[torch.Tensor], Any], max_graphs: int = 4, warmups: int = 2,
                 capture_on: int = 2) -> None:
        self.forward = forward
        self.max_graphs = max_graphs
        self.warmups = warmups
        self.capture_on = capture_on
        self._graphs: OrderedDict[tuple, _Captured] = OrderedDict()
        self._calls: OrderedDict[tuple, int] = OrderedDict()  # eager calls per shape not yet captured

    def __call__(self, x: torch.Tensor) -> Any:
        if x.device.type != "cuda" or torch.is_grad_enabled():
            return self.forward(x)
        autocast = torch.is_autocast_enabled("cuda") and torch.get_autocast_dtype("cuda")
        key = (tuple(x.shape), x.dtype, x.device, autocast)
        captured = self._graphs.get(key)
        if captured is None:
            calls = self._calls.pop(key, 0) + 1
            if calls < self.capture_on:
                self._calls[key] = calls
                while len(self._calls) > _COUNTED_SHAPES:
                    self._calls.popitem(last=False)
                return self.forward(x)
            captured = self._capture(x, autocast)
            self._graphs[key] = captured
            while len(self._graphs) > self.max_graphs:  # a graph's memory pool goes with it
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        captured.inputs.copy_(x)
        captured.graph.replay()
        return _clone(captured.outputs)

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Input shapes with a captured graph, least recently used first."""
        return [key[0] for key in self._graphs]

    def _capture(self, x: torch.Tensor, autocast: torch.dtype | Literal[False]) -> _Captured:
        inputs = x.clone()
        stream = torch.cuda.current_stream(x.device)
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(stream)
        no_cast_cache = torch.autocast("cuda", dtype=autocast or None, enabled=bool(autocast), cache_enabled=False)
        with no_cast_cache:
            with torch.cuda.stream(side):
                for _ in range(self.warmups):
                    self.forward(inputs)
            stream.wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                outputs = self.forward(inputs)
        log.info("captured a CUDA graph for input %s", tuple(x.shape))
        return _Captured(graph, inputs, outputs)


class GraphedModule(nn.Module):
    """``module`` (one tensor in) with its forward pass replayed from CUDA graphs, see :class:`GraphedForward`."""

    def __init__(self, module: nn.Module, max_graphs: int = 4) -> None:
        super().__init__()
        self.module = module
        self._graphed = GraphedForward(module, max_graphs=max_graphs)

    def forward(self, x: torch.Tensor) -> Any:
        return self._graphed(x)

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Input shapes with a captured graph, least recently used first."""
        return self._graphed.shapes
