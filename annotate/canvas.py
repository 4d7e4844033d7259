"""The studio's stroke editor: a canvas of our own over the tinted image, sending only what was painted.

The server gives the browser a *stage* (``stage_html``): the tinted image as a file URL plus its
size. ``canvas.js`` lays a transparent canvas of that size over it, paints brush strokes on it,
and, when an event needs the strokes, hands over a *payload*: the bounding box of the painted
pixels as a PNG crop with its offset and the canvas size, as JSON text in a hidden textbox
(filled by the event's ``js``). Nothing is uploaded before an event and nothing is sent that was
not painted; ``gr.ImageEditor`` instead exported and uploaded its whole canvas three times over
(background, composite and layer) for every event, which took seconds in the browser.

``editor_value`` turns a payload back into the ``{"layers": [RGBA layer]}`` value that
``annotate.editing.apply_editor`` decodes (at the canvas size; strokes are scaled to the image
there).
"""
from __future__ import annotations

import base64
import binascii
import html
import json
import struct
from pathlib import Path

import numpy as np
import pyspng

from annotate.strokes import BACKGROUND_HEX, EDGE_HEX, FOREGROUND_HEX
from toonmatte.errors import ToonmatteError

EMPTY_STAGE = '<div class="tm-empty">Load images to start correcting.</div>'
PNG_DATA_URL = "data:image/png;base64,"


def stage_html(background: str, size: tuple[int, int], stem: str) -> str:
    """The editor's HTML for one matte: ``background`` (a file Gradio serves) shown at ``size`` = (h, w)."""
    h, w = size
    src = html.escape(f"gradio_api/file={Path(background).as_posix()}", quote=True)
    return (f'<div class="tm-stage" data-width="{w}" data-height="{h}" data-stem="{html.escape(stem, quote=True)}">'
            f'<div class="tm-view"><img class="tm-background" src="{src}" alt="the image, backdrop tinted" '
            f'draggable="false"></div><div class="tm-status"></div></div>')


def _png_size(data: bytes) -> tuple[int, int]:
    """(height, width) from a PNG's header, read before anything is decoded."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ToonmatteError("The painted strokes did not arrive as a PNG; reload the page and paint again.")
    width, height = struct.unpack(">II", data[16:24])
    return height, width


def editor_value(payload: str | None, size: tuple[int, int]) -> dict:
    """The strokes of a payload as ``{"layers": [RGBA uint8 array of size (h, w)]}`` (no layers: nothing painted).

    ``size`` is the canvas size the editor was given for the current matte; strokes painted on a
    canvas of another size belong to another image and are refused.
    """
    if not payload:
        return {"layers": []}
    try:
        message = json.loads(payload)
        shape = int(message["height"]), int(message["width"])
        top, left = int(message["y"]), int(message["x"])
        url = str(message["png"])
    except (ValueError, KeyError, TypeError):
        raise ToonmatteError("The painted strokes arrived damaged; reload the page and paint again.") from None
    if shape != tuple(size):
        raise ToonmatteError("The strokes were painted on another image than the one open now; paint them again.")
    if not url.startswith(PNG_DATA_URL):
        raise ToonmatteError("The painted strokes did not arrive as a PNG; reload the page and paint again.")
    try:
        data = base64.b64decode(url[len(PNG_DATA_URL):], validate=True)
    except (binascii.Error, ValueError):
        raise ToonmatteError("The painted strokes arrived damaged; reload the page and paint again.") from None
    crop_h, crop_w = _png_size(data)
    if top < 0 or left < 0 or top + crop_h > shape[0] or left + crop_w > shape[1]:
        raise ToonmatteError("The painted strokes lie outside the image; reload the page and paint again.")
    try:
        crop = pyspng.load(data)
    except (RuntimeError, ValueError):
        raise ToonmatteError("The painted strokes arrived damaged; reload the page and paint again.") from None
    if crop.shape != (crop_h, crop_w, 4) or crop.dtype != np.uint8:
        raise ToonmatteError("The painted strokes must be an 8-bit RGBA PNG; reload the page and paint again.")
    layer = np.zeros((*shape, 4), np.uint8)
    layer[top:top + crop_h, left:left + crop_w] = crop
    return {"layers": [layer]}


def head() -> str:
    """The ``<script>`` and ``<style>`` of the editor, for ``launch(head=...)``."""
    folder = Path(__file__).parent
    brushes = json.dumps([["foreground", FOREGROUND_HEX], ["background", BACKGROUND_HEX], ["edge", EDGE_HEX]])
    script = (folder / "canvas.js").read_text(encoding="utf-8").replace("__BRUSHES__", brushes)
    return f"<style>\n{(folder / 'canvas.css').read_text(encoding='utf-8')}</style>\n<script>\n{script}</script>"
