"""``python -m benchmarks.studio``: how responsive the studio is on this machine, server side.

Times, on a procedurally drawn 2048x2048 toon image:

- **Apply strokes**: the UI's "Apply strokes" handler as Gradio calls it (decode the painted crop
  the editor sends with the event, apply the strokes, re-tint the editor background, render the
  preview views), and separately Gradio's own server-side work around it (reading the inputs,
  caching the returned files after it). The crop is compressed as Chromium's canvas compresses it
  (``browser_png``), since that sets what decoding it costs;
- **Save**: storing the triple (``editing.save``: foreground estimation when no cached cut-out
  exists, three PNGs, fsync'd atomic commit), and the whole Save button handler;
- **Start**: ``python app.py`` with no weights (offline, empty Hugging Face cache) until ``/``
  answers HTTP 200.

Each time is the median of ``--repeats`` runs after a warm-up. Targets: apply + preview under
100 ms, save under 500 ms, start under 5 s. What a person waits for in a browser is
``python -m benchmarks.studio_browser``; the engine's own benchmarks are ``python -m toonmatte bench``.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
APPLY_TARGET_MS = 100.0
SAVE_TARGET_MS = 500.0
START_TARGET_MS = 5000.0


@dataclass
class Row:
    step: str
    ms: float
    target_ms: float | None = None

    def line(self) -> str:
        target = "" if self.target_ms is None else f"< {self.target_ms:.0f}"
        met = "" if self.target_ms is None else ("yes" if self.ms < self.target_ms else "NO")
        return f"| {self.step:<58} | {self.ms:>9.1f} | {target:>7} | {met:>4} |"


def draw_scene(size: int = 2048, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A toon character with loose hair strands on a gray backdrop: (rgb, alpha).

    Drawn at twice the size and shrunk with area averaging, so edges and thin strands get soft
    alpha as in real cel art; soft shading and a faint grain make it compress about like real art
    (a 2048x2048 PNG of about 3.5 MB at zlib level 1).
    """
    rng = np.random.default_rng(seed)
    big = 2 * size
    mask = np.zeros((big, big), np.uint8)
    colour = np.full((big, big, 3), 128, np.uint8)
    c = big // 2

    def paint(draw: Callable[[np.ndarray], Any], rgb: tuple[int, int, int]) -> None:
        layer = np.zeros_like(mask)
        draw(layer)
        colour[layer > 0] = rgb
        mask[layer > 0] = 255

    paint(lambda m: cv2.ellipse(m, (c, int(big * 0.95)), (int(big * 0.3), int(big * 0.4)), 0, 180, 360, 255, -1),
          (60, 90, 170))
    paint(lambda m: cv2.circle(m, (c, int(big * 0.4)), int(big * 0.18), 255, -1), (250, 215, 185))
    paint(lambda m: cv2.ellipse(m, (c, int(big * 0.33)), (int(big * 0.21), int(big * 0.15)), 0, 180, 360, 255, -1),
          (120, 60, 40))
    for _ in range(60):  # loose hair strands: thin lines that end up as soft alpha
        x0, y0 = c + int(rng.integers(-big // 5, big // 5)), int(big * 0.22) + int(rng.integers(0, big // 10))
        x1, y1 = x0 + int(rng.integers(-big // 6, big // 6)), y0 - int(rng.integers(big // 20, big // 7))
        width = int(rng.integers(1, 4))
        paint(lambda m, p=(x0, y0, x1, y1), w=width: cv2.line(m, p[:2], p[2:], 255, w), (120, 60, 40))
    outline = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8))
    colour[outline > 0] = (25, 20, 30)
    rgb = cv2.resize(colour, (size, size), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA)
    # soft shading and a faint grain: real art compresses about like this (PNG cost matters here)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) * (2048.0 / size)
    shade = 0.85 + 0.15 * np.sin(xx / 300.0) * np.cos(yy / 410.0)
    grain = cv2.GaussianBlur(rng.normal(0.0, 1.6, rgb.shape).astype(np.float32), (3, 3), 0)
    rgb = np.clip(rgb * shade[..., None] + grain, 0, 255).astype(np.uint8)
    return rgb, alpha


def stroke_layer(size: int) -> np.ndarray:
    """An editor "strokes" layer (RGBA) as the browser sends it: one foreground and one background
    brush stroke of radius size/100 and about a sixth of the image long, anti-aliased."""
    from annotate.strokes import BACKGROUND_COLOR, FOREGROUND_COLOR

    layer = np.zeros((size, size, 4), np.uint8)
    radius = max(2, size // 100)
    cv2.line(layer, (size // 10, size // 10), (size // 4, size // 6), (*FOREGROUND_COLOR, 255), 2 * radius, cv2.LINE_AA)
    cv2.line(layer, (size // 2 - size // 12, int(size * 0.8)), (size // 2 + size // 12, int(size * 0.85)),
             (*BACKGROUND_COLOR, 255), 2 * radius, cv2.LINE_AA)
    return layer


def median_ms(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time in ms of ``repeats`` calls after one warm-up call, and the last result."""
    result = fn()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times), result


def browser_png(array: np.ndarray) -> bytes:
    """A PNG as Chromium's ``canvas.toBlob`` writes the editor's layers: every row with the "Up" filter, zlib's
    fastest level (checked against Chromium 156, whose files are 10-15% larger than zlib's level 1 makes).

    How a PNG was compressed sets its decoding cost: a mostly empty strokes layer written this way decodes several
    times faster than the same layer at zlib's default level with adaptive filters.
    """
    from toonmatte.imaging.png import png_file, up_filtered

    rows = np.ascontiguousarray(array).reshape(array.shape[0], -1)
    return png_file(array.shape, zlib.compress(up_filtered(rows, None), 1))


def strokes_payload(layer: np.ndarray) -> str:
    """What the studio's editor (``annotate/canvas.js``) sends with an event for a painted ``layer``:
    the painted pixels' bounding box as a PNG data URL, with its offset and the canvas size."""
    import base64

    from annotate.canvas import PNG_DATA_URL

    rows, cols = np.flatnonzero(layer[..., 3].any(1)), np.flatnonzero(layer[..., 3].any(0))
    crop = layer[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return json.dumps({"width": layer.shape[1], "height": layer.shape[0], "x": int(cols[0]), "y": int(rows[0]),
                       "png": PNG_DATA_URL + base64.b64encode(browser_png(crop)).decode()})


class _StudioHarness:
    """A Studio with its Blocks built (not launched), to call the real event handlers and
    Gradio's pre- and post-processing for them."""

    def __init__(self, folder: Path) -> None:
        from annotate.access import Access
        from annotate.engine import Engine
        from annotate.studio import Studio
        from annotate.web.ui import build_app
        from toonmatte.dataset import DatasetStore

        self.folder = folder
        self.studio = Studio(DatasetStore(folder / "dataset", generation="bench"), Engine(model="fallback"),
                             access=Access(local_annotator="bench"))
        self.demo = build_app(self.studio)
        self._session: Any = None
        self._loop = asyncio.new_event_loop()  # one loop, as in the server: ``asyncio.run`` would add its own
        # set-up, and on exit even the repr of the finished task, arrays included (about 10 ms)

    def handler(self, name: str) -> Any:
        for block_fn in self.demo.fns.values():
            if block_fn.name == name:
                return block_fn
        raise LookupError(f"the studio has no event handler named {name}")

    def _session_state(self) -> Any:
        """One browser session's state, built once as the server does when a page connects."""
        from gradio.state_holder import SessionState

        if self._session is None:
            self._session = SessionState(self.demo)
        return self._session

    def preprocess(self, block_fn: Any, inputs: list[Any]) -> list[Any]:
        return self._loop.run_until_complete(self.demo.preprocess_data(block_fn, list(inputs), self._session_state()))

    def postprocess(self, block_fn: Any, outputs: list[Any]) -> list[Any]:
        return self._loop.run_until_complete(self.demo.postprocess_data(block_fn, outputs, self._session_state()))

    def close(self) -> None:
        self.studio.close()
        self._loop.close()


def _timed(prepare: Callable[[], Any], run: Callable[[Any], Any], repeats: int) -> tuple[float, Any]:
    """Median ms of ``run(prepare())`` over ``repeats`` runs after a warm-up, timing ``run`` only."""
    result = run(prepare())
    times = []
    for _ in range(max(1, repeats)):
        argument = prepare()
        start = time.perf_counter()
        result = run(argument)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times), result


def bench_editing(size: int, repeats: int) -> list[Row]:
    """Show an image, apply strokes to it and save it, through the studio's real handlers."""
    from annotate import editing, preview
    from annotate.canvas import editor_value
    from annotate.editing import Item
    from annotate.strokes import strokes_from_editor

    rgb, truth = draw_scene(size)
    predicted = truth.copy()
    predicted[: size // 5, : size // 3] = 0  # a prediction with mistakes for the strokes to fix
    layer = stroke_layer(size)
    look = [preview.CHECKERBOARD, "#3a7bd5", True]
    rows: list[Row] = []

    def new_item() -> Item:
        return Item("bench", rgb, predicted, predicted.copy(), "fallback", "bench")

    with tempfile.TemporaryDirectory(prefix="toonmatte-bench-") as tmp, contextlib.redirect_stdout(io.StringIO()):
        harness = _StudioHarness(Path(tmp))
        try:
            renderer = harness.studio.renderer
            apply_fn, save_fn = harness.handler("on_apply"), harness.handler("on_save")
            downloads_fn = harness.handler("on_downloads")

            def show(item: Item) -> Item:
                renderer.editor(item)
                renderer.views(item, *look)
                return item

            show_ms, shown = _timed(new_item, show, repeats)
            downloads_fn.fn(shown, True)  # the page now shows ``shown``, as after loading it
            value = strokes_payload(layer)
            pre_ms, processed = _timed(lambda: [None, value, *look],
                                       lambda inputs: harness.preprocess(apply_fn, inputs), repeats)
            apply_ms, outputs = median_ms(lambda: apply_fn.fn(shown, processed[1], *look, None, None), repeats)
            post_ms, _ = median_ms(lambda: harness.postprocess(apply_fn, outputs), repeats)
            decode_ms, _ = median_ms(lambda: strokes_from_editor(editor_value(value, shown.editor_size()),
                                                                 shown.alpha.shape), repeats)
            after_ms, _ = _timed(lambda: apply_fn.fn(shown, value, *look, None, None)[0],
                                 lambda item: downloads_fn.fn(item, True),
                                 repeats)
            rows += [Row(f"show a new {size}x{size} image (load/next), handler work", show_ms),
                     Row("apply strokes + preview, handler", apply_ms),
                     Row(f"  of which: decode the strokes ({len(value) / 1024:.0f} KB sent with the event)", decode_ms),
                     Row("  Gradio: read the event's inputs (before the handler)", pre_ms),
                     Row("  Gradio: cache the returned files (after)", post_ms),
                     Row("apply strokes + preview, all server-side work", pre_ms + apply_ms + post_ms, APPLY_TARGET_MS),
                     Row("  then: download files (chained step)", after_ms)]

            cold_ms, _ = _timed(new_item, lambda item: editing.save(harness.studio.store, item, "bench"), repeats)

            def applied() -> Item:
                """A new image shown with its downloads, then strokes applied: as before a first Save."""
                base = show(new_item())
                downloads_fn.fn(base, True)
                item = apply_fn.fn(base, value, *look, None, None)[0]
                downloads_fn.fn(item, True)
                return item

            handler_ms, _ = _timed(applied, lambda item: save_fn.fn(item, "", *look, None, None), repeats)
            rows += [Row("save triple, nothing cached (editing.save)", cold_ms, SAVE_TARGET_MS),
                     Row("first save after Apply, Save handler", handler_ms, SAVE_TARGET_MS)]
        finally:
            harness.close()
    return rows


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_start(timeout: float = 120.0) -> Row:
    """Seconds from spawning ``python app.py`` (offline, no weights) to HTTP 200 on ``/``."""
    with tempfile.TemporaryDirectory(prefix="toonmatte-bench-start-") as tmp:
        port = _free_port()
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(Path(tmp) / "hf"),
               "HF_HUB_CACHE": str(Path(tmp) / "hf" / "hub"), "TOONMATTE_CACHE": str(Path(tmp) / "cache"),
               "GRADIO_ANALYTICS_ENABLED": "False"}
        env.pop("TOONMATTE_WEIGHTS", None)
        log = Path(tmp) / "app.log"
        start = time.perf_counter()
        with open(log, "wb") as out:
            process = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--dataset-root",
                                        str(Path(tmp) / "dataset")], cwd=REPO, env=env, stdout=out,
                                       stderr=subprocess.STDOUT)
        try:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"app.py exited with {process.returncode}:\n{log.read_text()}")
                if time.perf_counter() - start > timeout:
                    raise RuntimeError(f"app.py did not serve within {timeout:.0f} s:\n{log.read_text()}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                        if response.status == 200:
                            break
                except OSError:
                    time.sleep(0.02)
            elapsed = (time.perf_counter() - start) * 1000.0
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return Row("app start, no weights (spawn -> HTTP 200 on /)", elapsed, START_TARGET_MS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.studio", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="image side (default 2048)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per step after one warm-up (default 5)")
    parser.add_argument("--skip-start", action="store_true", help="do not time the app start")
    args = parser.parse_args(argv)
    print(f"studio bench on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"median of {args.repeats} runs")
    rows = bench_editing(args.size, args.repeats)
    if not args.skip_start:
        rows.append(bench_start())
    print(f"| {'step':<58} | {'ms':>9} | {'target':>7} | {'met':>4} |")
    print(f"|{'-' * 60}|{'-' * 11}|{'-' * 9}|{'-' * 6}|")
    for row in rows:
        print(row.line())
    return 0 if all(row.target_ms is None or row.ms < row.target_ms for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
