"""Image in, alpha matte out: ToonOut's pre/post-processing around a loaded model.

One :class:`Matter` per loaded model; it is reused for every image and is safe to share
between threads (the device call is serialized by a lock). When no weights can be had
it falls back to the classical engine, says so in the log and in ``fallback_reason``,
and every :class:`Matte` names the engine that produced it.
"""
from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from toonmatte.errors import OnnxModelError, ToonmatteError, WeightsError
from toonmatte.imaging.fallback import fallback_alpha
from toonmatte.imaging.imageio import GRAY, LoadedImage, load_image
from toonmatte.model.cuda_graphs import GraphedModule
from toonmatte.model.runtime import cpu_supports_bf16
from toonmatte.model.zoo import DEFAULT_MODEL, ModelSpec, spec_for

if TYPE_CHECKING:
    from toonmatte.model.onnx_backend import OnnxModel

log = logging.getLogger(__name__)

FALLBACK = "fallback"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAPHED_SHAPES = 2  # CUDA graphs kept; each holds the activations of a whole pass in its memory pool
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
BACKENDS = ("torch", "onnx")  # what runs the model: torch itself, or ONNX Runtime on an exported file


@dataclass(frozen=True)
class Matte:
    """A prediction: ``alpha`` (uint8 HxW, the input's size), the RGB ``image`` the model saw, and its ``engine``."""

    alpha: np.ndarray
    image: np.ndarray
    engine: str


def pick_device(device: str | None) -> torch.device:
    """``None`` or "auto" means CUDA when available, else the CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as error:
        raise ToonmatteError(f"Unknown device {device!r}; use cpu, cuda or cuda:N.") from error
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ToonmatteError(f"Device {device!r} was requested but no CUDA GPU is available; use --device cpu.")
    return chosen


def pick_precision(precision: str | None, device: torch.device) -> str:
    """``None`` or "auto" means bf16 on CUDA (ToonOut trained in bf16), and on a CPU with
    bfloat16 instructions (several times faster than fp32 there, with mattes within a level or two of
    fp32's); fp32 on other CPUs."""
    if precision in (None, "auto"):
        return "bf16" if device.type == "cuda" or cpu_supports_bf16() else "fp32"
    if precision not in PRECISIONS:
        raise ToonmatteError(f"Unknown precision {precision!r}; use one of: auto, {', '.join(PRECISIONS)}.")
    return precision


def preprocess(rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """RGB uint8 HxWx3 -> normalized 3 x h x w float32, resized with OpenCV bilinear as in ToonOut's training."""
    height, width = size
    resized = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
    x = torch.from_numpy(resized).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return x.sub_(mean).div_(std)


def postprocess(logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """1 x h x w logits -> uint8 alpha at ``size``: sigmoid, bilinear resize back, rounded to 8 bits."""
    probability = torch.sigmoid(logits.float())[None]
    if tuple(probability.shape[-2:]) != tuple(size):
        probability = F.interpolate(probability, size=size, mode="bilinear", align_corners=False)
    return probability[0, 0].clamp_(0, 1).mul_(255).round_().to(torch.uint8).cpu().numpy()


def model_for_precision(net: torch.nn.Module, device: torch.device, precision: str) -> torch.nn.Module:
    """The model to run at ``precision``: ``net`` itself, or on CUDA in half precision a copy with
    half-precision weights (see ``toonmatte.model.inference.store_weights_in``), which saves casting them
    on every pass; ``net`` keeps its float32 weights for an fp32 recompute."""
    from toonmatte.model.inference import store_weights_in

    if device.type != "cuda" or precision == "fp32":
        return net
    return store_weights_in(copy.deepcopy(net), PRECISIONS[precision])


class Matter:
    """A loaded matting engine.

    ``model`` is a zoo name (see ``toonmatte.model.zoo.ZOO``), a local checkpoint's path (a fine-tune's
    ``best.safetensors`` or run folder), or "fallback" for the classical engine on purpose;
    ``weights`` overrides where the checkpoint comes from (a fine-tune's weights, with their card
    beside them, then name the model: see ``toonmatte.model.zoo.spec_for``). With
    ``allow_fallback`` a missing checkpoint is not an error: the classical engine is used
    and ``fallback_reason`` says why and how to provide the weights. On CUDA the forward pass
    is replayed from CUDA graphs, one per input shape, unless ``cuda_graphs`` is False
    (see ``toonmatte.model.cuda_graphs``). With ``backend="onnx"`` ONNX Runtime runs an exported file
    instead of torch (see :meth:`_load_onnx`), in fp32; pre- and post-processing stay the same.
    """

    def __init__(self, model: str = DEFAULT_MODEL, weights: str | Path | None = None, device: str | None = None,
                 precision: str | None = None, allow_fallback: bool = True, background: tuple[int, int, int] = GRAY,
                 cuda_graphs: bool = True, backend: str = "torch") -> None:
        if backend not in BACKENDS:
            raise ToonmatteError(f"Unknown backend {backend!r}; use one of: {', '.join(BACKENDS)}.")
        if backend == "onnx" and precision not in (None, "auto", "fp32"):
            raise ToonmatteError(f"The ONNX backend runs in fp32 only; use --precision fp32, or --backend torch "
                                 f"for {precision}.")
        self.backend = backend
        self.background = background
        self.device = pick_device(device)
        self.precision = "fp32" if backend == "onnx" else pick_precision(precision, self.device)
        self.fallback_reason: str | None = None
        self.weights_path: Path | None = None
        self._hub_revision: str | None = None  # set when the weights are the Hub file of a zoo entry
        self._lock = threading.Lock()
        self._net: torch.nn.Module | OnnxModel | None = None  # an OnnxModel with the ONNX backend
        self._fast_net: torch.nn.Module | OnnxModel | None = None  # what runs at self.precision
        self._graphed: GraphedModule | None = None  # self._fast_net replayed from CUDA graphs
        if model == FALLBACK:
            self.engine, self.spec = FALLBACK, None
            return
        self.spec = spec_for(model, weights)
        try:
            if backend == "onnx":
                onnx, self.weights_path = self._load_onnx(weights)
                self._net = self._fast_net = onnx  # the ONNX backend runs in fp32 only
            else:
                net, self.weights_path = self._load(weights)
                self._net, self._fast_net = net, model_for_precision(net, self.device, self.precision)
                if cuda_graphs and self.device.type == "cuda":
                    self._graphed = GraphedModule(self._fast_net, max_graphs=GRAPHED_SHAPES)
            self.engine = self.spec.name
        except WeightsError as error:
            if not allow_fallback:
                raise
            self.engine = FALLBACK
            self.fallback_reason = f"{error} Until then the classical fallback is used, which is less accurate."
            log.warning("%s", self.fallback_reason)

    def _load(self, weights: str | Path | None) -> tuple[torch.nn.Module, Path]:
        from toonmatte.model.birefnet import build_model
        from toonmatte.model.inference import optimize_for_inference
        from toonmatte.model.weights import load_weights, read_checkpoint

        spec = self._required_spec
        path = self._checkpoint(weights)
        if path.suffix.lower() == ".onnx":
            raise OnnxModelError(f"{path} is an ONNX file; run it with --backend onnx.")
        state, config = read_checkpoint(path, f"pass the {spec.filename} file from {spec.repo_id}")
        net = build_model(config)
        load_weights(net, state)  # in place
        net = optimize_for_inference(net)
        log.info("loaded %s from %s on %s (%s)", spec.title, path, self.device, self.precision)
        return net.to(self.device), path

    def _checkpoint(self, weights: str | Path | None) -> Path:
        from toonmatte.model.weights import local_weights, resolve_weights

        spec = self._required_spec
        local = local_weights(spec, weights)
        # a Hub file is the pinned revision; a local file standing in for it is named by itself (see ``version``)
        self._hub_revision = spec.revision if local is None else None
        return local if local is not None else resolve_weights(spec)

    def _load_onnx(self, weights: str | Path | None) -> tuple[OnnxModel, Path]:
        """ONNX Runtime running the checkpoint's export: the checkpoint itself when it is an .onnx file,
        else its export at the model's input size, made once (minutes on a CPU) into the toonmatte
        cache (see ``toonmatte.model.onnx_backend.cached_export_path``). Returns the model and the checkpoint."""
        from toonmatte.model.onnx_backend import OnnxModel, cached_export_path, providers_for
        from toonmatte.model.onnx_export import export_onnx

        spec = self._required_spec
        if spec.resolution is None:
            raise OnnxModelError(f"The ONNX backend runs one input size, and {spec.title} runs at each image's "
                                 "own size; use --backend torch.")
        size = (spec.resolution, spec.resolution)
        checkpoint = path = self._checkpoint(weights)
        if checkpoint.suffix.lower() != ".onnx":
            path = cached_export_path(checkpoint, size)
        if not path.is_file():
            log.warning("exporting %s to ONNX for %dx%d input, once (minutes on a CPU), into %s",
                        spec.title, *size, path)
            net = self._load(weights)[0].cpu()
            export_onnx(net, path, size, source=checkpoint.name)  # WriteError where the cache is not writable
            del net
        model = OnnxModel(path, providers=providers_for(self.device))
        model.require_size(size, spec.title)
        log.info("running %s with ONNX Runtime from %s on %s", spec.title, path, self.device)
        return model, checkpoint

    @property
    def graphed_shapes(self) -> list[tuple[int, ...]]:
        """Input shapes replayed from CUDA graphs (empty on the CPU, with ``cuda_graphs=False``,
        before a shape's second call, or after a capture failed)."""
        return self._graphed.shapes if self._graphed is not None else []

    @property
    def torch_model(self) -> torch.nn.Module | None:
        """The loaded torch model in fp32, optimized for inference; None with the fallback or the ONNX backend."""
        return self._net if isinstance(self._net, torch.nn.Module) else None

    @property
    def _required_spec(self) -> ModelSpec:
        """``spec``, for code that runs only with a named model (only the fallback asked for by name has none)."""
        assert self.spec is not None, "no model spec: the fallback was asked for by name"
        return self.spec

    @property
    def is_fallback(self) -> bool:
        return self.engine == FALLBACK

    @property
    def title(self) -> str:
        """A human name for the engine, for banners and logs."""
        return "classical fallback" if self.is_fallback else self._required_spec.title

    @property
    def version(self) -> str:
        """What produced the mattes, for dataset records: the Hub revision the weights were downloaded at, a
        fine-tune's label (the start of its weights' SHA-256), or else the weights file's name."""
        if self.is_fallback:
            return FALLBACK
        spec = self._required_spec
        label = spec.revision if spec.path is not None else self._hub_revision
        return label or (self.weights_path.name if self.weights_path else "main")

    def predict(self, image: Any) -> Matte:
        """Matte one image (path, bytes, PIL image, numpy array or LoadedImage); raises BadImageError."""
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Iterable[Any], batch_size: int = 1) -> list[Matte]:
        """Matte several images, ``batch_size`` at a time through the model (images of one input size together)."""
        loaded = [image if isinstance(image, LoadedImage) else load_image(image, background=self.background)
                  for image in images]
        if self._net is None:
            return [Matte(fallback_alpha(item.rgb), item.rgb, FALLBACK) for item in loaded]
        alphas: dict[int, np.ndarray] = {}
        groups: dict[tuple[int, int], list[int]] = {}
        for index, item in enumerate(loaded):
            groups.setdefault(self._required_spec.input_size(*item.rgb.shape[:2]), []).append(index)
        for size, indices in groups.items():
            for start in range(0, len(indices), max(1, batch_size)):
                chunk = indices[start:start + max(1, batch_size)]
                logits = self.forward(torch.stack([preprocess(loaded[i].rgb, size) for i in chunk]))
                for i, item_logits in zip(chunk, logits):
                    alphas[i] = postprocess(item_logits, loaded[i].rgb.shape[:2])
        return [Matte(alphas[i], item.rgb, self.engine) for i, item in enumerate(loaded)]

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalized B x 3 x h x w batch -> B x 1 x h x w float32 logits on the model's device.

        Half precision runs under autocast; a result with NaN/inf is recomputed in fp32.
        CUDA runs under ``inference_mode``; the CPU under ``no_grad``, because with
        ``inference_mode`` CPU autocast re-casts every weight at every use instead of once
        per pass.
        """
        assert self._net is not None
        grad_off = torch.inference_mode() if self.device.type == "cuda" else torch.no_grad()
        with self._lock, grad_off:
            batch = batch.to(self.device, non_blocking=True)
            logits = self._run_fast(batch)
            if self.precision != "fp32" and not torch.isfinite(logits).all():
                log.warning("the %s result contained NaN or inf; recomputed in fp32", self.precision)
                logits = self._run(batch, "fp32")
        return logits

    def _run_fast(self, batch: torch.Tensor) -> torch.Tensor:
        """The forward pass at ``self.precision``; if its CUDA graph fails, eagerly from then on."""
        try:
            return self._run(batch, self.precision)
        except RuntimeError as error:
            if self._graphed is None:
                raise
            log.warning("the CUDA graph of the forward pass failed (%s); running it eagerly from now on", error)
            self._graphed = None
            return self._run(batch, self.precision)

    def _run(self, batch: torch.Tensor, precision: str) -> torch.Tensor:
        """One pass at ``precision``: from the CUDA graphs at the engine's own precision, else eagerly."""
        if precision != self.precision:
            net = self._net
        else:
            net = self._graphed if self._graphed is not None else self._fast_net
        assert net is not None  # forward runs only with a loaded model
        if precision == "fp32":
            return net(batch).float()
        with torch.autocast(self.device.type, dtype=PRECISIONS[precision]):
            return net(batch).float()

