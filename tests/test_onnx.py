"""ONNX export and the ONNX Runtime backend: parity with torch, the dynamic batch, and files that are refused.

The tiny graph is exported once for the module, at 128x128 (``Matter``'s tests make ToonOut run at that
size); the full graph once, on the golden weights at 384x256, against the reference logits. Exporting is
slow (a minute or more for either graph on two CPU cores: torch.export traces some 1,500 to 3,000
operations), so the tests share these files.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from conftest import FIXTURES, draw_toon
from test_birefnet import assert_matches_reference
from toonmatte.cli import main
from toonmatte.errors import OnnxModelError, ToonmatteError
from toonmatte.model.birefnet import BiRefNetConfig, build_model
from toonmatte.model.golden_fill import fill_state_dict, golden_input
from toonmatte.model.inference import optimize_for_inference
from toonmatte.model.onnx_backend import OnnxModel, cached_export_path
from toonmatte.model.onnx_export import ARCHITECTURE, export_onnx
from toonmatte.model.zoo import ZOO
from toonmatte.pipeline import Matter

SIZE = (128, 128)
FP32_TOLERANCE = 1e-3  # the bound on |logit delta| between ONNX Runtime and torch in fp32


def tiny_model() -> torch.nn.Module:
    """The tiny graph with the weights ``toonmatte bench --tiny`` gives it (seed 0)."""
    torch.manual_seed(0)
    return build_model(BiRefNetConfig.tiny())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(checkpoint, its export through the command line, the command's output, the torch model as Matter runs it)."""
    folder = tmp_path_factory.mktemp("tiny")
    checkpoint = folder / "tiny.pth"
    model = tiny_model()
    torch.save(model.state_dict(), checkpoint)
    out = folder / "tiny.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["export", "onnx", "--weights", str(checkpoint), "--size", "128x128", "--out", str(out)])
    assert status == 0
    return checkpoint, out, printed.getvalue(), optimize_for_inference(model)


@pytest.fixture
def toonout_at_tiny_size(monkeypatch):
    """ToonOut's zoo entry running at the tiny export's size."""
    monkeypatch.setitem(ZOO, "toonout", dataclasses.replace(ZOO["toonout"], resolution=SIZE[0]))


@pytest.fixture(scope="module")
def full_export(tmp_path_factory):
    """ToonOut's graph with the golden weights, exported at 384x256: (path, export result, torch model)."""
    model = build_model()
    model.load_state_dict(fill_state_dict(model.state_dict()), strict=True)
    model = optimize_for_inference(model)
    path = tmp_path_factory.mktemp("full") / "toonout-384x256.onnx"
    return path, export_onnx(model, path, (384, 256), source="golden"), model


def test_export_command_writes_a_checked_file_with_a_dynamic_batch(tiny):
    _, path, printed, _ = tiny
    assert "ONNX Runtime vs torch on the golden input: max |logit delta|" in printed, printed
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    (image,), (logits,) = proto.graph.input, proto.graph.output
    assert image.name == "image" and logits.name == "logits"
    dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1:] == [3, *SIZE]  # a named, dynamic batch dimension
    assert image.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert metadata["toonmatte.architecture"] == ARCHITECTURE and metadata["toonmatte.size"] == "128x128"
    assert metadata["toonmatte.weights"] == "tiny.pth"


def test_onnx_runtime_matches_torch_for_any_batch_size(tiny):
    _, path, _, model = tiny
    session = OnnxModel(path)
    assert session.size == SIZE
    generator = torch.Generator().manual_seed(1)
    for batch in (1, 3):
        x = torch.randn(batch, 3, *SIZE, generator=generator)
        with torch.no_grad():
            expected = model(x)
        logits = session(x)
        assert logits.shape == (batch, 1, *SIZE) and logits.dtype == torch.float32
        assert (logits - expected).abs().max().item() <= FP32_TOLERANCE


def test_full_graph_export_matches_the_reference_logits(full_export):
    path, result, model = full_export
    assert result.max_delta <= FP32_TOLERANCE
    logits = OnnxModel(path)(golden_input(384, 256))
    assert_matches_reference(logits, dict(np.load(FIXTURES / "forward.npz")), 384, 256)
    with torch.no_grad():
        assert (logits - model(golden_input(384, 256))).abs().max().item() <= FP32_TOLERANCE


def test_fp16_export_runs_close_to_fp32(tmp_path):
    model = optimize_for_inference(tiny_model())
    result = export_onnx(model, tmp_path / "half.onnx", (64, 96), precision="fp16")
    proto = onnx.load(str(result.path))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 in and out
    dtypes = {t.name.removeprefix("net."): t.data_type for t in proto.graph.initializer}
    for name in ("bb.layers.0.blocks.0.attn.qkv.weight", "decoder.decoder_block4.conv_in.weight"):
        assert dtypes[name] == onnx.TensorProto.FLOAT16
    for name in ("decoder.ipt_blk1.weight", "decoder.decoder_block1.conv_out.weight"):  # the head stays float32
        assert dtypes[name] == onnx.TensorProto.FLOAT
    assert result.max_delta < 0.05
    assert next(model.parameters()).dtype == torch.float32  # the model given was not converted


def write_foreign_model(path, input_name="input", shape=(1, 3, 320, 320)) -> None:
    """An ONNX file from another model: one input, one output, nothing of toonmatte's."""
    from onnx import TensorProto, helper

    node = helper.make_node("Sigmoid", [input_name], ["mask"])
    graph = helper.make_graph([node], "u2net", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("mask", TensorProto.FLOAT, shape)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def assert_one_sentence(error: BaseException, *fragments: str) -> None:
    text = str(error)
    assert "\n" not in text and text.endswith(".") and "Traceback" not in text, text
    for fragment in fragments:
        assert fragment in text, text


def test_files_that_are_not_toonmatte_exports_are_refused_in_one_sentence(tiny, tmp_path):
    _, path, _, _ = tiny
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all")
    foreign = tmp_path / "u2net.onnx"
    write_foreign_model(foreign)
    proto = onnx.load(str(path))
    unmarked = copy.deepcopy(proto)
    del unmarked.metadata_props[:]
    onnx.save(unmarked, str(tmp_path / "unmarked.onnx"))
    next(opset for opset in proto.opset_import if opset.domain == "").version = 99  # no onnxruntime knows it
    onnx.save(proto, str(tmp_path / "future.onnx"), save_as_external_data=False)
    cases = {garbage: "is not an ONNX model file", foreign: "is not a BiRefNet export from toonmatte",
             tmp_path / "unmarked.onnx": "was not exported from toonmatte's", tmp_path / "future.onnx": "opset",
             tmp_path / "missing.onnx": "does not exist"}
    for file, fragment in cases.items():
        with pytest.raises(OnnxModelError) as caught:
            OnnxModel(file)
        assert_one_sentence(caught.value, fragment, "export")


def test_a_file_exported_for_another_size_is_refused(tiny, tmp_path):
    _, path, _, _ = tiny
    with pytest.raises(OnnxModelError) as caught:
        OnnxModel(path).require_size((512, 512), "ToonOut")
    assert_one_sentence(caught.value, "exported for 128x128 input but ToonOut runs at 512x512", "--size 512x512")
    with pytest.raises(OnnxModelError) as caught:
        Matter("birefnet-dynamic", weights=path, device="cpu", backend="onnx")
    assert_one_sentence(caught.value, "each image's own size", "--backend torch")


def test_matter_runs_an_onnx_file_like_torch(tiny, toonout_at_tiny_size, toon):
    checkpoint, path, _, _ = tiny
    rgb, _ = toon
    onnx_matter = Matter(weights=path, device="cpu", backend="onnx")
    torch_matter = Matter(weights=checkpoint, device="cpu", precision="fp32")
    assert onnx_matter.backend == "onnx" and onnx_matter.torch_model is None and onnx_matter.precision == "fp32"
    mattes = onnx_matter.predict_batch([rgb, rgb[::-1].copy(), rgb], batch_size=3)
    expected = torch_matter.predict_batch([rgb, rgb[::-1].copy(), rgb], batch_size=3)
    for got, want in zip(mattes, expected):
        assert got.engine == want.engine == "toonout"
        assert np.abs(got.alpha.astype(int) - want.alpha.astype(int)).max() <= 1


def test_matter_exports_a_checkpoint_once_into_the_cache(tiny, toonout_at_tiny_size, monkeypatch):
    import toonmatte.model.onnx_export

    checkpoint, path, _, _ = tiny
    calls = []

    def export(net, out, size, **kwargs):  # the real export is timed by the fixture; this one copies its file
        calls.append((out, size))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)

    monkeypatch.setattr(toonmatte.model.onnx_export, "export_onnx", export)
    first = Matter(weights=checkpoint, device="cpu", backend="onnx")
    second = Matter(weights=checkpoint, device="cpu", backend="onnx")
    assert calls == [(cached_export_path(checkpoint, SIZE), SIZE)]
    assert first.weights_path == second.weights_path == checkpoint and first.version == "tiny.pth"
    assert cached_export_path(checkpoint, SIZE).is_file()


def test_backend_settings_that_cannot_work_are_one_sentence(tiny):
    checkpoint, path, _, _ = tiny
    with pytest.raises(ToonmatteError) as caught:
        Matter(weights=checkpoint, device="cpu", backend="tensorrt")
    assert_one_sentence(caught.value, "Unknown backend")
    with pytest.raises(ToonmatteError) as caught:
        Matter(weights=checkpoint, device="cpu", backend="onnx", precision="bf16")
    assert_one_sentence(caught.value, "fp32 only")
    with pytest.raises(OnnxModelError) as caught:
        Matter(weights=path, device="cpu")
    assert_one_sentence(caught.value, "is an ONNX file", "--backend onnx")


def test_predict_command_with_the_onnx_backend(tiny, toonout_at_tiny_size, tmp_path, capsys):
    _, path, _, _ = tiny
    source = tmp_path / "toon.png"
    Image.fromarray(draw_toon(96, 80)[0]).save(source)
    status = main(["predict", str(source), "--out", str(tmp_path / "out"), "--weights", str(path),
                   "--backend", "onnx", "--device", "cpu", "--no-foreground"])
    assert status == 0, capsys.readouterr()
    assert np.asarray(Image.open(tmp_path / "out" / "toon.png")).shape == (96, 80)


def test_export_command_refuses_bad_sizes_and_foreign_weights(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["export", "onnx", "--size", "1000x1000", "--out", str(tmp_path / "x.onnx")])
    assert "multiples of 32" in capsys.readouterr().err
    not_a_checkpoint = tmp_path / "weights.pth"
    torch.save({"conv.weight": torch.zeros(1)}, not_a_checkpoint)
    assert main(["export", "onnx", "--weights", str(not_a_checkpoint), "--out", str(tmp_path / "x.onnx")]) == 1
    assert "not a BiRefNet checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_export_refuses_settings_it_cannot_write_before_tracing(tmp_path):
    model = optimize_for_inference(tiny_model())
    for settings, fragment in (({"opset": 12}, "Opset 12 cannot be exported"), ({"precision": "int8"}, "precision"),
                               ({"size": (32, 64)}, "at least 64"), ({"size": (100, 96)}, "multiples of 32")):
        arguments = {"size": (64, 64), **settings}
        with pytest.raises(OnnxModelError) as caught:
            export_onnx(model, tmp_path / "x.onnx", **arguments)
        assert_one_sentence(caught.value, fragment)
    assert list(tmp_path.iterdir()) == []


def test_bench_compares_onnx_runtime_with_torch(tiny, tmp_path):
    _, path, _, _ = tiny
    out = tmp_path / "bench.json"
    assert main(["bench", "--backend", "onnx", "--tiny", "--size", "128", "--onnx", str(path), "--repeats", "2",
                 "--skip-foreground", "--device", "cpu", "--precision", "bf16", "--json", str(out)]) == 0
    onnx_run = json.loads(out.read_text())["onnx"]
    assert onnx_run["shape"] == "1x3x128x128"
    assert {name: len(times) for name, times in onnx_run["seconds"].items()} == {
        "torch": 2, "ONNX Runtime": 2, "torch bf16": 2}  # the fast path Matter would run is alternated too
    best = onnx_run["best_seconds"]
    assert best == {name: min(times) for name, times in onnx_run["seconds"].items()}
    assert onnx_run["onnx_vs_torch_time"] == pytest.approx(best["ONNX Runtime"] / best["torch"])
    assert onnx_run["onnx_vs_torch_bf16_time"] == pytest.approx(best["ONNX Runtime"] / best["torch bf16"])
    assert set(onnx_run["memory"]) == {"fp32", "ONNX Runtime fp32"}
    assert all(m["peak"] >= m["before"] > 0 for m in onnx_run["memory"].values())
    assert onnx_run["max_delta_logit"] < 1e-3  # the same weights as tiny_model's, seed 0


def test_the_studio_runs_the_onnx_backend_when_asked(tiny, toonout_at_tiny_size):
    from annotate.engine import Engine
    from annotate.web.main import parse_args

    _, path, _, _ = tiny
    assert parse_args([]).backend == "torch" and parse_args(["--backend", "onnx"]).backend == "onnx"
    engine = Engine(weights=str(path), device="cpu", backend="onnx")
    assert engine.get(timeout=300).backend == "onnx"
    banner, warning = engine.banner()
    assert "with ONNX Runtime" in banner and not warning
