"""The studio benchmark (``python -m benchmarks.studio``) runs the real handlers on the browser's path."""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pyspng
import pytest

from annotate import preview
from annotate.canvas import editor_value
from annotate.editing import Item
from benchmarks import studio as bench


def test_harness_hands_the_strokes_over_as_the_browser_does(tmp_path: Path) -> None:
    rgb, alpha = bench.draw_scene(128)
    layer = bench.stroke_layer(128)
    harness = bench._StudioHarness(tmp_path)
    try:
        item = Item("toon", rgb, alpha, alpha.copy(), "fallback", "v")
        apply_fn = harness.handler("on_apply")
        payload = bench.strokes_payload(layer)
        assert np.array_equal(editor_value(payload, item.editor_size())["layers"][0], layer)  # only the crop travels
        assert len(payload) < len(bench.browser_png(layer)) * 4 / 3
        _, value, *_ = harness.preprocess(apply_fn, [None, payload, preview.CHECKERBOARD, "#3a7bd5", True])
        edited, stage, *rest = apply_fn.fn(item, value, preview.CHECKERBOARD, "#3a7bd5", True, None, None)
        assert not np.array_equal(edited.alpha, item.alpha) and 'class="tm-stage"' in stage
        harness.postprocess(apply_fn, [edited, stage, *rest])
    finally:
        harness.close()


def test_browser_png_round_trips_with_chromiums_filter_and_level() -> None:
    layer = bench.stroke_layer(96)
    data = bench.browser_png(layer)
    assert np.array_equal(pyspng.load(data), layer)
    assert data[37:41] == b"IDAT" and data[41:43] == b"\x78\x01"  # zlib's fastest level, as Chromium writes it
    raw = zlib.decompress(data[41:-16])
    assert set(raw[::96 * 4 + 1]) == {2}  # every row filtered with "Up"


def test_bench_editing_times_every_step() -> None:
    rows = bench.bench_editing(size=128, repeats=1)
    steps = [row.step for row in rows]
    assert any(step.startswith("apply strokes + preview, all server-side") for step in steps)
    assert sum(row.target_ms is not None for row in rows) == 3  # apply, and both saves
    ms = {row.step.strip(): row.ms for row in rows}
    parts = ms["apply strokes + preview, handler"] + ms["Gradio: read the event's inputs (before the handler)"] + \
        ms["Gradio: cache the returned files (after)"]
    assert ms["apply strokes + preview, all server-side work"] == pytest.approx(parts)  # the event is its parts
    decode = next(value for step, value in ms.items() if step.startswith("of which: decode the strokes"))
    assert decode <= ms["apply strokes + preview, handler"]  # timed inside it
