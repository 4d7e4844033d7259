"""Gradio components tuned for the studio."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pyspng
from gradio.components.image_editor import EditorData


class StrokesEditor(gr.ImageEditor):
    """``gr.ImageEditor`` (same front end) whose value reaches handlers with only its painted layers.

    The studio reads strokes from the layers and never the background or composite the browser
    sends back; decoding those two full-size PNGs would cost more than applying the strokes. Layers
    are decoded as RGBA arrays with libspng (``pyspng``: a mostly empty 2048x2048 layer in about half
    OpenCV's time and a third of Pillow's), so the component must be built with ``type="numpy"``
    and ``image_mode="RGBA"``.
    """

    is_template = True  # Gradio renders a template with its parent's front end (and takes its props
    # from the parent's __init__ signature, so this class must not define its own)

    def preprocess(self, payload: EditorData | None) -> dict | None:
        if payload is None:
            return None
        if payload.id is not None:  # the browser uploaded the images as blobs beforehand
            blobs = self.blob_storage.pop(payload.id, None)
            sources: list[Any] = list(blobs.layers) if blobs is not None else []
        else:
            sources = list(payload.layers)
        layers = [self._decode(source) for source in sources if source is not None]
        return {"background": None, "layers": layers, "composite": None}

    def _decode(self, source: Any) -> Any:
        if self.type != "numpy" or self.image_mode != "RGBA":
            return self.convert_and_format_image(source)
        try:
            data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else Path(source.path).read_bytes()
            array = pyspng.load(data)
        except (OSError, RuntimeError):  # unreadable or not a PNG
            array = None
        if array is None or array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 4:
            return self.convert_and_format_image(source)  # anything unusual: Gradio's own conversion
        return array
