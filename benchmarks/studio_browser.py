"""``python -m benchmarks.studio_browser``: what a person waits for in a real browser, per studio action.

Starts ``python app.py`` offline (the classical engine) on a free local port, opens it in Debian's
Chromium through Playwright (1400x1000), and for each image size draws a toon image, uploads it and
times, from the click to what the person sees:

- **Load**, **Apply** and **Snap** (the last two after one painted stroke): until the preview shows
  the new matte and the editor its new canvas;
- **Save & next**: until the progress line counts the image as saved.

Each time is split at the moments the browser sends the event (``queue/join``) and first asks for a
file of the answer: before the send is the browser's own work (the editor cropping and encoding
its strokes), in between the server's, after it the browser fetching and drawing the results.
Median of ``--repeats`` runs per action. The server-side benchmark is ``python -m benchmarks.studio``;
the engine's is ``python -m toonmatte bench``.
"""
from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync"]


def toon(size: int, seed: int) -> np.ndarray:
    """A flat-shaded figure with an outline on a grey backdrop (RGB uint8), drawn at ``size``."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 128, np.uint8)
    centre = (size // 2, size // 2)
    colour = tuple(int(v) for v in rng.integers(40, 220, 3))
    cv2.ellipse(image, (centre[0], int(size * 0.7)), (size // 4, size // 3), 0, 180, 360, colour, -1, cv2.LINE_AA)
    cv2.circle(image, (centre[0], int(size * 0.38)), size // 6, (250, 215, 185), -1, cv2.LINE_AA)
    cv2.circle(image, (centre[0], int(size * 0.38)), size // 6, (25, 20, 30), max(2, size // 200), cv2.LINE_AA)
    return image


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(workdir / "hf"), "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("TOONMATTE_WEIGHTS", None)
    process = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port),
                                "--dataset-root", str(workdir / "dataset")], cwd=REPO, env=env,
                               stdout=open(workdir / "app.log", "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url, timeout=2):
                return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"app.py did not start; see {workdir / 'app.log'}")


class Timeline:
    """Click -> event sent -> first result file requested (the answer arrived) -> result shown, in
    seconds from the click."""

    def __init__(self, page) -> None:
        self.page = page
        self.sent: list[float] = []
        self.fetched: list[float] = []
        page.on("request", self._seen)

    def _seen(self, request) -> None:
        if request.method == "POST" and "/queue/join" in request.url:
            self.sent.append(time.perf_counter())
        elif "/gradio_api/file=" in request.url and "toonmatte-render" in request.url and self.sent:
            self.fetched.append(time.perf_counter())

    def run(self, click: str, shown: str) -> tuple[float, float, float]:
        self.sent.clear()
        self.fetched.clear()
        start = time.perf_counter()
        self.page.click(click)
        self.page.wait_for_function(shown, timeout=120_000)
        end = time.perf_counter()
        sent = self.sent[0] if self.sent else end
        answered = self.fetched[0] if self.fetched else end
        return sent - start, answered - start, end - start


PREVIEW_CHANGED = """previous => { const img = document.querySelector('#preview img');
  const stage = document.querySelector('#editor .tm-stage[data-ready] img.tm-background');
  return !!img && img.src !== previous && img.complete && img.naturalWidth > 0
    && !!stage && stage.complete && stage.naturalWidth > 0; }"""


SAVED = """() => { const counted = document.querySelector('#progress').innerText.match(/(\\d+) of (\\d+) corrected/);
  return !!counted && counted[1] === counted[2]; }"""
"""The progress line counts every queued image as saved (each round saves the last one)."""


def preview_changed(page) -> str:
    """A predicate for ``wait_for_function``: the preview shows another file than it does now."""
    src = page.evaluate("() => document.querySelector('#preview img')?.src || ''")
    return f"() => ({PREVIEW_CHANGED})({src!r})"


def paint(page) -> None:
    """One stroke across the editor's canvas with the foreground brush."""
    page.keyboard.press("f")
    box = page.locator("#editor canvas.tm-strokes").bounding_box()
    x, y = box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.15
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(x + step * box["width"] * 0.02, y)
    page.mouse.up()


def measure(url: str, sizes: list[int], repeats: int,
            workdir: Path) -> dict[tuple[int, str], list[tuple[float, float, float]]]:
    from playwright.sync_api import sync_playwright

    results: dict[tuple[int, str], list[tuple[float, float, float]]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector("#load-queue")
        timeline = Timeline(page)
        for size in sizes:
            paths = []
            for i in range(repeats + 1):
                path = workdir / "images" / f"toon{size}_{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), cv2.cvtColor(toon(size, i), cv2.COLOR_RGB2BGR))
                paths.append(str(path))
            for i, path in enumerate(paths):  # the first round warms up
                clear = page.locator("#uploads button[aria-label='Clear']")
                if clear.count():  # the upload box keeps earlier files: each round loads one image
                    clear.first.click()
                page.locator("#uploads input[type=file]").set_input_files(path)
                page.wait_for_selector(f"#uploads td.filename[aria-label='{Path(path).name}']", timeout=600_000)
                timings = {"Load": timeline.run("#load-queue", preview_changed(page))}
                page.wait_for_timeout(1500)
                for action, button in (("Apply", "#apply"), ("Snap", "#snap")):
                    paint(page)
                    timings[action] = timeline.run(button, preview_changed(page))
                    page.wait_for_timeout(1500)
                timings["Save & next"] = timeline.run("#save-next", SAVED)
                page.wait_for_timeout(1500)
                print(f"{size} round {i}: " + ", ".join(f"{a} {v[2]:.2f}s" for a, v in timings.items()), flush=True)
                if i:
                    for action, value in timings.items():
                        results.setdefault((size, action), []).append(value)
        browser.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.studio_browser", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1024,2048", help="square image sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"Debian's Chromium is not at {CHROMIUM}; install it with: apt-get install -y chromium")
        return 2
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="toonmatte-browser-bench-") as folder:
        workdir = Path(folder)
        process, url = start_app(workdir)
        try:
            results = measure(url, sizes, args.repeats, workdir)
        finally:
            process.terminate()
            process.wait(20)
    print(f"# studio in Chromium, headless, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"median of {args.repeats}; seconds from the click")
    print("| size | action | event sent | answer arrived | visible |")
    print("|---|---|---|---|---|")
    for (size, action), runs in results.items():
        sent, answered, shown = (statistics.median(column) for column in zip(*runs))
        print(f"| {size} | {action} | {sent:.2f} | {answered:.2f} | {shown:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
