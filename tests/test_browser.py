"""Real browser: Debian's Chromium driven by Playwright paints on the studio's editor and saves.

Upload an image; paint a foreground stroke over the backdrop and Apply; paint a background stroke
across the character and Apply again; paint one more foreground stroke and press Save & next
(which applies it). Brushes are picked with the keyboard shortcuts. The saved ``gt`` must have
changed where each of the three strokes was painted and nowhere else: a stroke lost after an Apply
fails it. Screenshots go to the test's temp folder (and to ``$TOONMATTE_SHOTS`` when set, for
looking at them while developing).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import draw_toon
from studio_server import GENERATION, start_app, stop_app

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.timeout(300)

if not os.environ.get("CI"):  # in CI both are installed (.ci/run) and the test must run
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium); "
                    "CI installs it and runs this test",
                    allow_module_level=True)
    pytest.importorskip("playwright", reason="Playwright is not installed (pip install -r requirements-dev.txt)")
from playwright import sync_api  # noqa: E402

SIZE = 160
TOLERANCE = 2
"""Pixels of slack around a painted stroke: the screen-to-image mapping comes from the editor's
rounded zoom percentage, and the brush disc is rasterized by the browser."""


def capsule(shape: tuple[int, int], start: tuple[float, float], end: tuple[float, float], radius: float) -> np.ndarray:
    """Boolean mask of the pixels within ``radius`` of the segment start-end ((x, y) image coordinates)."""
    ys, xs = np.mgrid[:shape[0], :shape[1]].astype(np.float64) + 0.5
    (x0, y0), (x1, y1) = start, end
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
    return np.hypot(xs - (x0 + t * dx), ys - (y0 + t * dy)) <= radius


def test_paint_and_save_changes_exactly_the_painted_pixels(tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    shots = tmp_path / "shots"
    shots.mkdir()
    rgb, _ = draw_toon(SIZE, SIZE, seed=2)
    source = tmp_path / "upload" / "painted.png"
    source.parent.mkdir()
    Image.fromarray(rgb).save(source)
    dataset = tmp_path / "dataset"
    process, url, log = start_app(dataset, tmp_path / "hf_home")
    try:
        client = Client(url, verbose=False, download_files=str(tmp_path / "dl"))
        _, mask_path = client.predict(handle_file(str(source)), api_name="/matte")
        with Image.open(mask_path) as mask_image:
            predicted = np.asarray(mask_image).copy()  # the classical engine is deterministic

        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url)
                page.wait_for_selector("#load-queue")
                page.wait_for_function("() => document.querySelector('#engine-banner').innerText.includes('Engine')",
                                       timeout=120_000)
                page.click("#save-next")  # nothing loaded yet: one clear message, and nothing covered by an error badge
                page.wait_for_selector(".toast-body.error", timeout=60_000)
                assert "load images first" in page.locator(".toast-body.error").inner_text().lower()
                assert not page.locator("#editor .error, #preview .error, #before-after .error").count()
                page.locator(".toast-body.error button, .toast-close").first.click()
                page.locator("#uploads input[type=file]").set_input_files(str(source))
                page.wait_for_selector("#uploads td.filename[aria-label='painted.png']", timeout=120_000)
                page.click("#load-queue")
                page.wait_for_function("() => document.querySelector('#progress').innerText.includes('Image 1 of 1')",
                                       timeout=120_000)
                page.wait_for_selector("#editor canvas.tm-strokes", timeout=120_000)
                page.wait_for_timeout(500)
                page.screenshot(path=str(shots / "1-loaded.png"), full_page=True)

                canvas = page.locator("#editor canvas.tm-strokes").bounding_box()
                scale = canvas["width"] / SIZE  # the canvas is the image's size, fitted into the editor

                def to_screen(x: float, y: float) -> tuple[float, float]:
                    return canvas["x"] + x * scale, canvas["y"] + y * scale

                def paint(start: tuple[float, float], end: tuple[float, float]) -> None:
                    page.mouse.move(*to_screen(*start))
                    page.mouse.down()
                    for step in range(1, 21):
                        t = step / 20
                        page.mouse.move(*to_screen(start[0] + (end[0] - start[0]) * t,
                                                   start[1] + (end[1] - start[1]) * t))
                    page.mouse.up()

                def brush() -> dict:
                    return page.evaluate("window.toonmatteCanvas.brush()")

                def use(key: str, colour: str | None = None) -> None:
                    """Press a shortcut; with ``colour``, check the editor's brush now paints in it."""
                    page.keyboard.press(key)
                    if colour:
                        assert brush()["colour"] == colour

                page.locator("h1").click()  # keyboard focus on the page, not in a text field
                start_radius = brush()["radius"]
                for key in "]]][":  # bigger three times, then smaller: through the shortcuts
                    use(key)
                radius = brush()["radius"]
                assert radius == int(np.floor(np.ceil(np.ceil(np.ceil(start_radius * 1.5) * 1.5) * 1.5) / 1.5))
                assert radius >= 4
                status = page.locator("#editor .tm-status").inner_text()
                assert status.startswith(f"foreground brush · radius {radius} px")

                fg_stroke = ((12.0, 14.0), (50.0, 20.0))  # over the plain backdrop (top left)
                bg_stroke = ((70.0, 140.0), (92.0, 140.0))  # across the character's body
                fg_stroke2 = ((140.0, 14.0), (150.0, 40.0))  # over the backdrop (top right), saved unapplied

                def apply_and_wait(shot: str) -> None:
                    """Press Apply and wait until the editor shows the new matte, with no overlay on it."""
                    before = page.locator("#progress").inner_text()
                    page.keyboard.press("a")
                    page.wait_for_function(
                        "previous => { const now = document.querySelector('#progress').innerText;"
                        " return now !== previous && now.includes('unsaved changes'); }", arg=before, timeout=120_000)
                    page.wait_for_function("() => !!document.querySelector('#editor .tm-stage[data-ready]')")
                    page.wait_for_timeout(300)
                    assert not page.locator("#editor .eta-bar, #editor .progress-text, #editor .error").count(), \
                        "a status overlay covers the editor after Apply"
                    page.screenshot(path=str(shots / shot), full_page=True)

                use("f", "#00ff00")
                paint(*fg_stroke)
                apply_and_wait("2-applied-fg.png")
                assert not page.locator(".toast-body.warning").count(), "Apply said nothing was painted"
                use("b", "#ff0000")
                paint(*bg_stroke)
                apply_and_wait("3-applied-bg.png")
                assert not page.locator(".toast-body.warning").count(), "the second Apply lost its stroke"
                use("f", "#00ff00")
                paint(*fg_stroke2)
                page.wait_for_timeout(300)

                page.keyboard.press("s")  # save and next
                saved = dataset / "train" / GENERATION / "gt" / "painted.png"
                page.wait_for_function(
                    "() => document.querySelector('#progress').innerText.includes('1 of 1 corrected')",
                    timeout=120_000)
                page.wait_for_timeout(1000)
                page.screenshot(path=str(shots / "4-saved.png"), full_page=True)

                page.locator("button[role=tab] >> text=Browse").click()  # the saved item is in the gallery...
                page.locator("#gallery >> text=painted · corrected").click(timeout=120_000)
                page.wait_for_function(  # ...and clicking it reopens it in the editor tab
                    "() => document.querySelector('button[role=tab][aria-selected=true]')"
                    ".innerText.includes('Correct')",
                    timeout=120_000)
                page.wait_for_function("() => !document.querySelector('.pending')", timeout=120_000)
                page.screenshot(path=str(shots / "5-reopened.png"), full_page=True)
                assert not page.locator(".toast-body.error").count(), "reopening showed an error"
            finally:
                browser.close()
    finally:
        stop_app(process)
        print(log.read_text()[-4000:])  # shown by pytest when the test fails
        if os.environ.get("TOONMATTE_SHOTS"):
            shutil.copytree(shots, os.environ["TOONMATTE_SHOTS"], dirs_exist_ok=True)

    with Image.open(saved) as gt_image:
        gt = np.asarray(gt_image).copy()
    shape = predicted.shape
    strokes = {"foreground": [fg_stroke, fg_stroke2], "background": [bg_stroke]}
    core = {kind: np.logical_or.reduce([capsule(shape, *stroke, radius - TOLERANCE) for stroke in painted])
            for kind, painted in strokes.items()}
    reach = {kind: np.logical_or.reduce([capsule(shape, *stroke, radius + TOLERANCE) for stroke in painted])
             for kind, painted in strokes.items()}
    assert (predicted[core["foreground"]] == 0).all() and (predicted[core["background"]] == 255).all(), \
        "strokes must cross a real change"
    for stroke in strokes["foreground"]:
        inside = capsule(shape, *stroke, radius - TOLERANCE)
        assert (gt[inside] == 255).all(), f"the foreground stroke {stroke} was lost"
    assert (gt[core["background"]] == 0).all(), "the background stroke did not set alpha 0 where it was painted"
    changed = gt != predicted
    reached = reach["foreground"] | reach["background"]
    assert not (changed & ~reached).any(), "pixels changed outside the painted strokes"
    assert (gt[changed & reach["foreground"]] == 255).all() and (gt[changed & reach["background"]] == 0).all()
    im = np.asarray(Image.open(dataset / "train" / GENERATION / "im" / "painted.png"))
    assert np.array_equal(im, rgb)
    assert "Traceback" not in log.read_text()


def _browser(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                            "--disable-component-update", "--disable-sync"])


def _try_it(page, image: Path) -> list[str]:
    """On the Try it tab: upload ``image``, press Matte, wait for its cut-out, download the zip; its names."""
    import zipfile

    page.locator("#try-files input[type=file]").set_input_files(str(image))
    page.wait_for_selector(f"#try-files td.filename[aria-label='{image.name}']", timeout=120_000)
    page.click("#try-go")
    page.wait_for_selector("#try-gallery img", timeout=120_000)
    with page.expect_download(timeout=60_000) as download:
        page.click("#try-zip")
    with zipfile.ZipFile(download.value.path()) as archive:
        return sorted(archive.namelist())


def test_read_only_visitors_try_it_and_signed_in_annotators_save(tmp_path: Path) -> None:
    """A Space without sign-in for this visitor: Try it works and writes nothing. With sign-in, a person
    not on the list is read-only, and an annotator corrects and saves under their own name."""
    image = tmp_path / "upload" / "visitor.png"
    image.parent.mkdir()
    Image.fromarray(draw_toon(96, 96, seed=5)[0]).save(image)
    space_data = tmp_path / "space"
    process, url, log = start_app(space_data, tmp_path / "hf_home", env={"SPACE_ID": "team/toonmatte"})
    try:
        with sync_api.sync_playwright() as playwright:
            browser = _browser(playwright)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url)
                page.wait_for_function("() => !!document.querySelector('#who')?.innerText?.includes('Try it')",
                                       timeout=120_000)
                assert "Try it" in page.locator("button[role=tab][aria-selected=true]").inner_text()
                assert _try_it(page, image) == ["visitor.png", "visitor_mask.png"]
                page.screenshot(path=str(tmp_path / "try-it.png"), full_page=True)
                page.locator("button[role=tab] >> text=Correct").click()
                page.locator("#uploads input[type=file]").set_input_files(str(image))
                page.wait_for_selector("#uploads td.filename[aria-label='visitor.png']", timeout=120_000)
                page.click("#load-queue")
                page.wait_for_selector(".toast-body.error", timeout=60_000)
                assert "sign in" in page.locator(".toast-body.error").inner_text().lower()
            finally:
                browser.close()
    finally:
        stop_app(process)
        print(log.read_text()[-3000:])
    assert not list(space_data.rglob("*.png")), "the read-only mode wrote into the dataset"

    logins = tmp_path / "users.txt"
    logins.write_text("alice:a-pass\ncarol:c-pass\n")
    dataset = tmp_path / "dataset"
    process, url, log = start_app(dataset, tmp_path / "hf_home", "--auth-file", str(logins), "--annotators", "alice")
    try:
        with sync_api.sync_playwright() as playwright:
            browser = _browser(playwright)
            try:
                for name in ("carol", "alice"):
                    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                    page.goto(url)
                    page.locator("input[type=password]").wait_for(timeout=60_000)
                    page.locator("input:not([type=password])").first.fill(name)
                    page.locator("input[type=password]").fill(f"{name[0]}-pass")
                    page.locator("button:has-text('Login')").click()
                    page.wait_for_function("who => !!document.querySelector('#who')?.innerText?.includes(who)",
                                           arg=f"Signed in as {name}", timeout=120_000)
                    if name == "carol":
                        assert "read-only" in page.locator("#who").inner_text()
                        assert "Try it" in page.locator("button[role=tab][aria-selected=true]").inner_text()
                        continue
                    page.locator("#uploads input[type=file]").set_input_files(str(image))
                    page.wait_for_selector("#uploads td.filename[aria-label='visitor.png']", timeout=120_000)
                    page.click("#load-queue")
                    page.wait_for_function(
                        "() => document.querySelector('#progress').innerText.includes('Image 1 of 1')",
                        timeout=120_000)
                    page.click("#save-next")
                    page.wait_for_function(
                        "() => document.querySelector('#progress').innerText.includes('1 of 1 corrected')",
                        timeout=120_000)
                    page.screenshot(path=str(tmp_path / "annotator.png"), full_page=True)
            finally:
                browser.close()
    finally:
        stop_app(process)
        print(log.read_text()[-3000:])
    from toonmatte.dataset import DatasetStore

    with DatasetStore(dataset) as store:
        assert [(record.stem, record.annotator) for record in store.items()] == [("visitor", "alice")]
