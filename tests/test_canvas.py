"""The stroke editor's server side: the stage it is given and the painted crop it sends back."""
from __future__ import annotations

import base64
import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from annotate import canvas
from annotate.strokes import BACKGROUND_COLOR, FOREGROUND_COLOR, decode_strokes
from toonmatte.errors import ToonmatteError

SIZE = (60, 80)


def png_url(rgba: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    return canvas.PNG_DATA_URL + base64.b64encode(buffer.getvalue()).decode()


def payload(crop: np.ndarray, x: int, y: int, size: tuple[int, int] = SIZE, png: str | None = None) -> str:
    return json.dumps({"width": size[1], "height": size[0], "x": x, "y": y, "png": png or png_url(crop)})


def test_a_painted_crop_lands_where_it_was_painted() -> None:
    crop = np.zeros((7, 12, 4), np.uint8)
    crop[1:4, 2:9] = (*FOREGROUND_COLOR, 255)
    crop[5, 10] = (*BACKGROUND_COLOR, 200)
    value = canvas.editor_value(payload(crop, x=30, y=41), SIZE)
    layer = value["layers"][0]
    assert layer.shape == (*SIZE, 4)
    assert np.array_equal(layer[41:48, 30:42], crop) and not layer[:41].any() and not layer[:, :30].any()
    strokes = decode_strokes(value["layers"], SIZE)
    assert strokes.foreground.sum() == 21 and strokes.background[46, 40] and strokes.background.sum() == 1


def test_nothing_painted_is_no_layer() -> None:
    assert canvas.editor_value("", SIZE) == {"layers": []}
    assert canvas.editor_value(None, SIZE) == {"layers": []}


def bomb_png(width: int, height: int) -> str:
    """A PNG whose header declares ``width`` x ``height`` (nothing behind it is ever decoded)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    chunk = struct.pack(">I", len(header)) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return canvas.PNG_DATA_URL + base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk).decode()


@pytest.mark.parametrize("bad, words", [
    (payload(np.zeros((2, 2, 4), np.uint8), 0, 0, size=(61, 80)), "painted on another image"),
    ("{not json", "arrived damaged"),
    (json.dumps({"width": 80, "height": 60}), "arrived damaged"),
    (json.dumps({"width": 80, "height": 60, "x": 0, "y": 0, "png": "data:image/jpeg;base64,AAAA"}),
     "did not arrive as a PNG"),
    (json.dumps({"width": 80, "height": 60, "x": 0, "y": 0, "png": canvas.PNG_DATA_URL + "***"}), "arrived damaged"),
    (json.dumps({"width": 80, "height": 60, "x": 0, "y": 0, "png": canvas.PNG_DATA_URL + "AAAA"}),
     "did not arrive as a PNG"),
    (payload(np.zeros((5, 5, 4), np.uint8), 78, 0), "outside the image"),
    (payload(np.zeros((5, 5, 4), np.uint8), -1, 0), "outside the image"),
    (payload(None, 0, 0, png=bomb_png(100_000, 100_000)), "outside the image"),
    (payload(None, 0, 0, png=bomb_png(4, 4)), "arrived damaged"),
    (payload(np.zeros((5, 5, 3), np.uint8), 0, 0, png=canvas.PNG_DATA_URL + base64.b64encode(
        (lambda b: (Image.new("RGB", (5, 5)).save(b, format="PNG"), b.getvalue())[1])(io.BytesIO())).decode()), "RGBA"),
])
def test_bad_payloads_get_one_sentence(bad: str, words: str) -> None:
    with pytest.raises(ToonmatteError, match=words) as raised:
        canvas.editor_value(bad, SIZE)
    assert str(raised.value).endswith(".") and "\n" not in str(raised.value)


def test_stage_names_the_file_size_and_stem_escaped() -> None:
    stage = canvas.stage_html("/tmp/gradio/x/background.png", (120, 96), 'a"b<c')
    assert 'src="gradio_api/file=/tmp/gradio/x/background.png"' in stage
    assert 'data-width="96" data-height="120"' in stage and 'data-stem="a&quot;b&lt;c"' in stage


def test_head_fills_in_the_brush_colours() -> None:
    head = canvas.head()
    assert "__BRUSHES__" not in head and '["foreground", "#00ff00"]' in head and head.count("<script>") == 1
