"""Running an exported BiRefNet (``toonmatte.model.onnx_export``) with ONNX Runtime, in place of the torch model.

A file is checked before use: that ONNX Runtime can read and run it (its opset included), that it
takes ``image`` and gives ``logits`` as toonmatte's exports do, and that its metadata names this
graph. Each problem is one ``OnnxModelError`` sentence. Exports made for ``Matter`` are cached
beside the converted checkpoints, one per weights file, input size and opset.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from toonmatte.errors import OnnxModelError
from toonmatte.model.onnx_export import ARCHITECTURE, DEFAULT_OPSET, INPUT_NAME, METADATA, OUTPUT_NAME

if TYPE_CHECKING:
    import onnxruntime

EXPORT_HINT = "export one with python -m toonmatte export onnx"


def providers_for(device: torch.device) -> list[Any]:
    """ONNX Runtime's execution providers for a torch device: CUDA's (with the CPU for what it lacks) or the CPU's."""
    import onnxruntime

    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        raise OnnxModelError("This onnxruntime has no CUDA execution provider; install onnxruntime-gpu, "
                             "or use --device cpu or --backend torch.")
    return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]


def cached_export_path(weights: Path, size: tuple[int, int], opset: int = DEFAULT_OPSET) -> Path:
    """Where ``Matter`` keeps the export of ``weights`` at ``size``: in ``<toonmatte cache>/onnx``, named
    after the file's name, size and modification time (as converted checkpoints are), so a replaced
    checkpoint is exported again."""
    from toonmatte.model.weights import cache_dir

    stat = weights.stat()
    key = hashlib.sha256(f"{weights.name}|{stat.st_size}|{stat.st_mtime_ns}|{ARCHITECTURE}|{opset}".encode())
    height, width = size
    return cache_dir().parent / "onnx" / f"{weights.stem}-{key.hexdigest()[:16]}-{height}x{width}.onnx"


class OnnxModel:
    """``model(batch)``: an N x 3 x H x W float32 batch -> N x 1 x H x W float32 logits, on the batch's device.

    ``threads`` sets ONNX Runtime's intra-op threads (default: torch's thread count, so that both
    backends use the same cores).
    """

    def __init__(self, path: str | os.PathLike[str], providers: list | None = None, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = _open(self.path, providers or ["CPUExecutionProvider"], threads or torch.get_num_threads())
        self.size = _check(self.session, self.path)
        self.metadata = {key.removeprefix(METADATA): value
                         for key, value in self.session.get_modelmeta().custom_metadata_map.items()}

    def require_size(self, size: tuple[int, int] | torch.Size, title: str) -> None:
        """Raise ``OnnxModelError`` unless the file takes (height, width) ``size`` inputs, as ``title`` needs."""
        if self.size != tuple(size):
            height, width = size
            raise OnnxModelError(f"{self.path} was exported for {self.size[0]}x{self.size[1]} input but {title} runs "
                                 f"at {height}x{width}; export it again with --size {height}x{width}.")

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.require_size(batch.shape[-2:], "this batch")
        image = batch.detach().to("cpu", torch.float32).contiguous().numpy()
        logits = self.session.run([OUTPUT_NAME], {INPUT_NAME: image})[0]
        return torch.from_numpy(logits).to(batch.device)


def _open(path: Path, providers: list[Any], threads: int) -> onnxruntime.InferenceSession:
    import onnxruntime

    if not path.is_file():
        raise OnnxModelError(f"The ONNX file {path} does not exist; check the path or {EXPORT_HINT}.")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only: its warnings about constants it cannot fold are noise here
    # not ORT_ENABLE_ALL: its CPU layout optimizations crashed ONNX Runtime 1.32 (a segmentation fault) on the
    # fp16 export, and gained nothing measurable on the fp32 one
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types for every load failure
        text = str(error)
        if "protobuf parsing failed" in text.lower():
            raise OnnxModelError(f"{path} is not an ONNX model file; {EXPORT_HINT}.") from None
        if "opset" in text.lower():
            raise OnnxModelError(f"{path} uses an ONNX opset that onnxruntime {onnxruntime.__version__} cannot run; "
                                 f"export it again with --opset {DEFAULT_OPSET}, or upgrade onnxruntime.") from None
        first = (text.strip().splitlines() or [type(error).__name__])[0][:160]
        raise OnnxModelError(f"ONNX Runtime could not load {path} ({first}); {EXPORT_HINT}.") from None


def _check(session: onnxruntime.InferenceSession, path: Path) -> tuple[int, int]:
    """The (height, width) a toonmatte export takes; ``OnnxModelError`` for any other ONNX model."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape = inputs[0].shape if len(inputs) == 1 else []
    fits = ([i.name for i in inputs] == [INPUT_NAME] and [o.name for o in outputs] == [OUTPUT_NAME]
            and len(shape) == 4 and shape[1] == 3 and all(isinstance(d, int) for d in shape[2:])
            and len(outputs[0].shape) == 4 and outputs[0].shape[1] == 1)
    if not fits:
        def signature(args: list[Any]) -> str:
            return ", ".join(f"{a.name} {'x'.join(str(d) for d in a.shape)}" for a in args)

        raise OnnxModelError(f"{path} is not a BiRefNet export from toonmatte (it takes {signature(inputs)} and gives "
                             f"{signature(outputs)}, not {INPUT_NAME} Nx3xHxW and "
                             f"{OUTPUT_NAME} Nx1xHxW); {EXPORT_HINT}.")
    architecture = session.get_modelmeta().custom_metadata_map.get(METADATA + "architecture")
    if architecture != ARCHITECTURE:
        raise OnnxModelError(f"{path} was not exported from toonmatte's {ARCHITECTURE} graph (its metadata names "
                             f"{architecture or 'no graph'}); {EXPORT_HINT}.")
    return shape[2], shape[3]
