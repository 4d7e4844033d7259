"""Exporting the inference graph to an ONNX file that ONNX Runtime (and TensorRT, OpenVINO...) can run.

The file's one input is ``image`` (N x 3 x H x W float32, normalized as ``toonmatte.pipeline.preprocess``
does) and its one output ``logits`` (N x 1 x H x W float32); N is dynamic, H and W are fixed at export.
The graph is traced with ``torch.export`` from the model as ``optimize_for_inference`` leaves it; under
``torch.compiler.is_exporting()`` the Swin blocks and the deformable convolutions take their portable
paths (a window layout made for one image, ``grid_sample`` for the samples), which keep the batch size
out of every shape computed in Python. H and W stay fixed because those layouts are computed in Python
for each feature-map size.

The file is checked with ``onnx.checker``, run once with ONNX Runtime against the torch model on the
golden input (the result is returned), and only then moved into place, so a file at the output path is
always complete. Its metadata records what it is, which ``toonmatte.model.onnx_backend`` checks before use.
"""
from __future__ import annotations

import copy
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from toonmatte.errors import OnnxModelError, write_error

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
DEFAULT_OPSET = 18  # torch.onnx's own default, and the only opset the tests export at
MIN_OPSET = 18  # older ones would go through a version conversion, untried here (GridSample itself needs 16)
ARCHITECTURE = "birefnet-swin-v1"  # metadata value that marks a toonmatte export of this graph
METADATA = "toonmatte."  # prefix of the metadata keys toonmatte writes
PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class ExportResult:
    """Where the file went, how long the export took, and how far ONNX Runtime's logits are from torch's."""

    path: Path
    seconds: float
    max_delta: float


class HalfPrecision(nn.Module):
    """The model much as ``Matter`` runs it in fp16 on CUDA: linear and convolution weights stored in
    float16, run under autocast, the output head in float32 (see
    ``toonmatte.model.inference.store_weights_in``); float32 in and out. The LayerNorms get float16
    weights too: they see float16 inputs here, and ONNX's LayerNormalization takes one type for both
    (ONNX Runtime computes it in float32 inside). For GPUs: ONNX Runtime's CPU provider casts most
    float16 nodes back to float32."""

    def __init__(self, net: nn.Module) -> None:
        from toonmatte.model.inference import store_weights_in

        super().__init__()
        self.net = store_weights_in(net, torch.float16)
        for module in self.net.modules():
            if isinstance(module, nn.LayerNorm):
                module.half()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        with torch.autocast(image.device.type, dtype=torch.float16):
            return self.net(image).float()


def export_onnx(net: nn.Module, out: str | os.PathLike[str], size: tuple[int, int], precision: str = "fp32",
                opset: int = DEFAULT_OPSET, source: str = "") -> ExportResult:
    """Export ``net`` (a BiRefNet as ``optimize_for_inference`` leaves it, on the CPU) to ``out`` for
    ``size`` (height, width) inputs; ``source`` (the weights' file name) goes into the metadata.

    Raises ``OnnxModelError`` for a size or opset the graph cannot be exported at.
    """
    import onnx

    from toonmatte.model.golden_fill import golden_input

    if precision not in PRECISIONS:
        raise OnnxModelError(f"Unknown ONNX precision {precision!r}; use one of: {', '.join(PRECISIONS)}.")
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise OnnxModelError(f"Opset {opset} cannot be exported here; use one from {MIN_OPSET} to {newest} "
                             f"(default {DEFAULT_OPSET}).")
    height, width = size
    if height % 32 or width % 32 or min(height, width) < 64:
        raise OnnxModelError(f"The model cannot be exported at {height}x{width}; use multiples of 32 of at least 64 "
                             "(the deformable convolutions need feature maps of two pixels or more).")
    start = time.perf_counter()
    out = Path(out)
    image = golden_input(height, width)
    with torch.no_grad():
        # a real pass first: it caches the one-image window layouts the trace reads (see
        # SwinBlock.forward_exportable) and gives the logits the exported file must reproduce
        reference = net(image)
        model = HalfPrecision(copy.deepcopy(net)) if precision == "fp16" else net
        proto = _to_onnx(model, size, opset)
    for key, value in {"architecture": ARCHITECTURE, "size": f"{height}x{width}", "precision": precision,
                       "weights": source}.items():
        proto.metadata_props.add(key=METADATA + key, value=value)
    temporary = _write_temporary(proto, out)
    del proto  # about the size of the weights: freed before ONNX Runtime loads its own copy
    max_delta = _check_and_move(temporary, out, image, reference)
    seconds = time.perf_counter() - start
    log.info("exported %s (%s, %dx%d, opset %d) in %.0f s; max |logit delta| vs torch %.1e",
             out, precision, height, width, opset, seconds, max_delta)
    return ExportResult(out, seconds, max_delta)


def _to_onnx(model: nn.Module, size: tuple[int, int], opset: int) -> onnx.ModelProto:
    """The ONNX ``ModelProto`` of ``model`` with a dynamic batch dimension."""
    for name in ("onnx_ir", "onnxscript"):  # their passes log every step at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    batch = torch.export.Dim("batch", min=1)
    example = torch.zeros(2, 3, *size)  # not 1: torch.export would specialize a size-1 dimension
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},), strict=False)
    # optimize=False: onnxscript's optimizer takes minutes on the full graph on a CPU and the file it writes
    # runs no faster in ONNX Runtime, which folds constants and fuses nodes itself when it loads a file
    exported = torch.onnx.export(program, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset,
                                 dynamo=True, external_data=False, optimize=False, verbose=False)
    assert exported is not None  # None only from the legacy exporter (dynamo=False)
    return exported.model_proto


def _write_temporary(proto: onnx.ModelProto, out: Path) -> Path:
    """``proto`` written to a new temporary file beside ``out``; ``WriteError`` when it cannot be."""
    temporary = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}-", suffix=".onnx.tmp")
        with os.fdopen(handle, "wb") as file:
            file.write(proto.SerializeToString())
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; an exported model is as readable as any output
    except OSError as error:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        raise write_error(error, f"The ONNX file {out}") from None
    return Path(temporary)


def _check_and_move(temporary: Path, out: Path, image: torch.Tensor, reference: torch.Tensor) -> float:
    """Check the file with ``onnx.checker``, run it on ``image``, then rename it to ``out`` (it is removed
    on any failure). Returns the largest |logit| difference from ``reference``."""
    import onnx

    from toonmatte.model.onnx_backend import OnnxModel

    try:
        onnx.checker.check_model(str(temporary))
        logits = OnnxModel(temporary, providers=["CPUExecutionProvider"])(image)
        try:
            os.replace(temporary, out)
        except OSError as error:
            raise write_error(error, f"The ONNX file {out}") from None
    finally:
        temporary.unlink(missing_ok=True)
    return (logits - reference).abs().max().item()
