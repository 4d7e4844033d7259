"""The studio's matting engine, loaded on a background thread so the page is served at once.

Loading ToonOut (the torch import, a large checkpoint to download and read) is slow; the studio starts
serving immediately and the first prediction waits for the load. When no weights can be had,
``toonmatte.pipeline.Matter`` falls back to the classical engine and ``banner`` says why.
On a ZeroGPU Space the model calls run with a borrowed GPU (see ``annotate.zerogpu``).
"""
from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from annotate import zerogpu
from annotate.protocols import MatteResult, MattingEngine
from annotate.queue import Prediction, QueueItem
from toonmatte.errors import ToonmatteError
from toonmatte.imaging.imageio import ImageSource, LoadedImage, load_image

log = logging.getLogger(__name__)


Loader = Callable[[str, str | None, str | None], MattingEngine]
"""Builds the engine from (model, weights, device); see ``Engine``."""


def _default_loader(model: str, weights: str | None, device: str | None, backend: str = "torch",
                    keep_freed_memory: bool = False) -> MattingEngine:
    from toonmatte.model.runtime import keep_freed_memory_on_cpu
    from toonmatte.pipeline import Matter

    if keep_freed_memory:
        keep_freed_memory_on_cpu(device)  # the app's opt-in, applied here so torch loads off the main thread

    if zerogpu.active() and backend != "torch":
        raise ToonmatteError(f"The {backend} backend cannot run on ZeroGPU, which lends the GPU to torch calls only; "
                             "use the torch backend.")
    return Matter(model=model, weights=weights, device=device, allow_fallback=True, backend=backend,
                  cuda_graphs=not zerogpu.active())


class Engine:
    """A ``Matter`` built once on a background thread (``start``); ``get`` starts it if needed and waits.

    ``loader(model, weights, device)`` builds the matter (tests pass a stand-in; by default it is a
    ``Matter`` on ``backend``: torch or onnx); a ``ToonmatteError`` while loading (an unknown
    device, say) is kept and re-raised by ``get`` so that every prediction reports it as one sentence.

    On ZeroGPU the load runs in the main thread, where ``spaces`` intercepts the move to "cuda"
    (see ``annotate.zerogpu``): ``start`` loads there before returning, and a ``start`` from any
    other thread leaves the load to it. Predictions on the GPU go through one GPU function,
    registered here so that it exists before the app launches.
    """

    def __init__(self, model: str = "toonout", weights: str | None = None, device: str | None = None,
                 loader: Loader | None = None, backend: str = "torch", keep_freed_memory: bool = False) -> None:
        self.model, self.weights, self.device = model, weights, device
        self._loader = loader or functools.partial(_default_loader, backend=backend,
                                                   keep_freed_memory=keep_freed_memory)
        self._matter: MattingEngine | None = None
        self._error: ToonmatteError | None = None
        self._ready = threading.Event()
        self._started = threading.Lock()
        self._thread: threading.Thread | None = None
        self._mattes_on_gpu = zerogpu.gpu(self._mattes, duration=zerogpu.duration)

    def start(self) -> Engine:
        """Begin loading on a background thread (once); the app calls this right after the server is up."""
        if zerogpu.active():
            if threading.current_thread() is threading.main_thread():
                with self._started:
                    if not self._ready.is_set():
                        self._load()
            return self
        with self._started:
            if self._thread is None:
                self._thread = threading.Thread(target=self._load, name="toonmatte-engine-load", daemon=True)
                self._thread.start()
        return self

    def _load(self) -> None:
        try:
            self._matter = self._loader(self.model, self.weights, self.device)
            log.info("engine ready: %s", self._matter.engine)
        except ToonmatteError as error:
            self._error = error
            log.error("%s", error)
        except Exception as error:  # noqa: BLE001 - any load failure must reach the UI as one sentence
            self._error = ToonmatteError(f"The matting engine could not be loaded ({type(error).__name__}: {error}); "
                                         "check --model, --weights and --device.")
            log.exception("engine load failed")
        finally:
            self._ready.set()

    def get(self, timeout: float | None = None) -> MattingEngine:
        """The loaded matter (waits for the load); raises the load's ``ToonmatteError``."""
        self.start()
        if not self._ready.wait(timeout):
            raise ToonmatteError("The matting engine is still loading; try again in a moment.")
        if self._error is not None:
            raise self._error
        assert self._matter is not None  # set whenever the load finished without an error
        return self._matter

    def banner(self) -> tuple[str, bool]:
        """(markdown naming the engine, whether it is a warning to show prominently); waits for the load."""
        try:
            matter = self.get()
        except ToonmatteError as error:
            return f"**The matting engine failed to load.** {error}", True
        if matter.is_fallback:
            reason = matter.fallback_reason or "The classical fallback was chosen with --model fallback."
            return f"**Engine: {matter.title}.** {reason}", True
        device = "ZeroGPU" if zerogpu.active() and matter.device.type == "cuda" else matter.device
        runtime = " with ONNX Runtime" if matter.backend == "onnx" else ""
        return (f"Engine: **{matter.title}** ({matter.engine}, version {matter.version}, on {device}"
                f"{runtime})", False)

    def version(self) -> str:
        """The model version every matte of this engine is recorded with (waits for the load).

        Queue predictions and reopened items both take it from here, so a triple's ``model_version``
        does not depend on how the person reached the item."""
        return self.get().version

    def predict(self, source: ImageSource | LoadedImage) -> MatteResult:
        """``Matter.predict`` of one image (path, bytes, PIL image, array or ``LoadedImage``)."""
        return self._predict([source], "image")[0]

    def predict_many(self, sources: list[ImageSource | LoadedImage]) -> list[MatteResult]:
        """``predict`` of several images, ``zerogpu.BATCH_IMAGES`` to a GPU call on ZeroGPU."""
        mattes: list[MatteResult] = []
        for start in range(0, len(sources), zerogpu.BATCH_IMAGES):
            mattes += self._predict(sources[start:start + zerogpu.BATCH_IMAGES], "batch")
        return mattes

    def _predict(self, sources: list[ImageSource | LoadedImage], purpose: str) -> list[MatteResult]:
        """The mattes of ``sources``. Images are read here, outside any GPU call, so that a
        ``BadImageError`` names a file by its name only (uploads live in the server's own folders,
        which the person never sees). The model runs through the GPU function when it is on ZeroGPU's
        GPU; the classical fallback and a CPU engine run right here."""
        from toonmatte.pipeline import Matte

        matter = self.get()
        images = [source if isinstance(source, LoadedImage) else
                  load_image(source, background=matter.background,
                             label=Path(source).name if isinstance(source, (str, os.PathLike)) else None)
                  for source in sources]
        on_gpu = zerogpu.active() and not matter.is_fallback and matter.device.type == "cuda"
        alphas = (self._mattes_on_gpu if on_gpu else self._mattes)(images, purpose)
        return [Matte(alpha, image.rgb, matter.engine) for alpha, image in zip(alphas, images)]

    def _mattes(self, images: list[LoadedImage], purpose: str) -> list[np.ndarray]:
        """The alpha mattes of ``images``: the part of a prediction that needs the model. On ZeroGPU
        this runs in the worker that holds the GPU, so it returns only the alphas (``purpose`` sets
        the GPU time asked for, see ``zerogpu.duration``)."""
        assert self._matter is not None  # the load finished: _predict got it first
        return [matte.alpha for matte in self._matter.predict_batch(images)]

    def predict_item(self, item: QueueItem) -> Prediction:
        """The queue's predictor: matte the item's file (its hash is the one taken when it was queued)."""
        matte = self._predict([item.path], "prefetch")[0]
        return Prediction(stem=item.stem, path=Path(item.path), image=matte.image, alpha=matte.alpha,
                          engine=matte.engine, version=self.version(),
                          source_hash=item.digest())
