"""CUDA-graph replay of the forward pass: a plain pass-through on the CPU; on a GPU (tests skipped
without one), the same numbers as eager, captured on a shape's second call, bounded in count."""
from __future__ import annotations

import pytest
import torch

from toonmatte.model.birefnet import BiRefNetConfig, build_model
from toonmatte.model.cuda_graphs import GraphedForward, GraphedModule
from toonmatte.model.inference import optimize_for_inference
from toonmatte.pipeline import Matter

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def tiny_net(device: str = "cpu") -> torch.nn.Module:
    torch.manual_seed(0)
    return optimize_for_inference(build_model(BiRefNetConfig.tiny())).to(device)


def test_cpu_calls_run_the_forward_function_directly():
    calls = []

    def forward(x):
        calls.append(x.shape)
        return x * 2

    graphed = GraphedForward(forward)
    x = torch.ones(2, 3)
    with torch.inference_mode():
        assert torch.equal(graphed(x), x * 2)
        graphed(x)
    assert calls == [(2, 3), (2, 3)] and graphed.shapes == []


def test_graphed_model_on_the_cpu_gives_the_same_logits():
    net = tiny_net()
    x = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        eager = net(x)
        graphed = GraphedModule(net)
        assert torch.equal(graphed(x), eager) and torch.equal(graphed(x), eager)
    assert graphed.shapes == []


def test_matter_on_the_cpu_runs_eagerly(tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(build_model(BiRefNetConfig.tiny()).state_dict(), path)
    matter = Matter("birefnet-dynamic", weights=path, device="cpu")
    assert matter.graphed_shapes == []
    matter.predict(torch.zeros(64, 64, 3, dtype=torch.uint8).numpy())
    matter.predict(torch.zeros(64, 64, 3, dtype=torch.uint8).numpy())
    assert matter.graphed_shapes == []


@needs_cuda
@pytest.mark.parametrize("precision", [None, torch.bfloat16])
def test_graphed_model_matches_eager_on_cuda(precision):
    """The whole pass, deformable convolutions included, replays the eager numbers on new inputs."""
    net = tiny_net("cuda")
    graphed = GraphedModule(net)
    inputs = [torch.randn(2, 3, 128, 160, device="cuda") for _ in range(4)]
    with torch.inference_mode(), torch.autocast("cuda", dtype=precision or torch.float32, enabled=bool(precision)):
        eager = [net(x) for x in inputs]
        replayed = [graphed(x) for x in inputs]  # 1st call eager, 2nd captures, 3rd and 4th replay
    assert graphed.shapes == [(2, 3, 128, 160)]
    for a, b in zip(eager, replayed):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-3 if precision else 1e-5)


@needs_cuda
def test_graphs_are_captured_on_the_second_call_and_bounded():
    captures = []
    graphed = GraphedForward(lambda x: x.cumsum(0) + 1, max_graphs=2)
    real_capture = graphed._capture
    graphed._capture = lambda x, autocast: captures.append(tuple(x.shape)) or real_capture(x, autocast)
    with torch.inference_mode():
        for n in (3, 3, 3, 4, 4, 5, 5):
            x = torch.rand(n, device="cuda")
            torch.testing.assert_close(graphed(x), x.cumsum(0) + 1)
    assert captures == [(3,), (4,), (5,)]
    assert graphed.shapes == [(4,), (5,)]


@needs_cuda
def test_matter_on_cuda_replays_the_pass_and_matches_eager(tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(build_model(BiRefNetConfig.tiny()).state_dict(), path)
    graphed = Matter("birefnet-dynamic", weights=path, device="cuda")
    eager = Matter("birefnet-dynamic", weights=path, device="cuda", cuda_graphs=False)
    rgb = torch.randint(0, 256, (200, 150, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)).numpy()
    for _ in range(3):
        a, b = graphed.predict(rgb).alpha, eager.predict(rgb).alpha
        assert abs(a.astype(int) - b.astype(int)).max() <= 1
    assert graphed.graphed_shapes == [(1, 3, 192, 160)] and eager.graphed_shapes == []
