"""The README's pictures, made from scratch: a grid of drawn characters and their cut-outs, and a studio screenshot.

Usage, from the repository root: ``python -m scripts.readme_images [--out docs/images] [--cell 200]
[--columns 3] [--model toonout] [--no-screenshot]``.

- ``cutouts.png``: procedurally drawn toon characters (``benchmarks.fallback_cases``, the drawings the
  fallback benchmark scores), each matted with ``toonmatte.Matter`` and shown as a pair of cells,
  the original beside its cut-out over the studio's checkerboard (``annotate.preview``). Offline,
  ``Matter`` falls back to the classical engine; the script prints which engine made the mattes so
  that the caption can say so.
- ``studio.png``: ``python app.py`` started offline on a temporary dataset root and a free port
  (``benchmarks.studio_browser.start_app``), one drawn image loaded in Debian's Chromium through
  Playwright, and the page photographed once the preview shows the matte.

Nothing here is part of the product; the pictures are outputs of this script, committed so that the
README shows them without running it.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CATEGORIES: tuple[str, ...] = (
    "plain_grey", "floor_shadow", "white_on_light", "dark_on_dark", "prop_held", "prop_on_surface",
)
"""The drawn cases shown, one pair of cells each (``benchmarks.fallback_cases.CATEGORIES``)."""
GUTTER = 4
"""White pixels between cells and around the grid."""
PAIR_GAP = 12
"""Extra white pixels between one pair of cells and the next, so the pairs read as pairs."""
GUTTER_RGB = (255, 255, 255)
SCREEN = {"width": 1400, "height": 1000}
"""The browser's viewport for the studio screenshot (as ``benchmarks.studio_browser`` uses)."""


@dataclass(frozen=True)
class Grid:
    """Where the cells of a grid of ``pairs`` (original | cut-out) pairs lie, ``columns`` pairs a row."""

    pairs: int
    columns: int
    cell: int

    @property
    def rows(self) -> int:
        return -(-self.pairs // self.columns)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the whole picture."""
        width = self.columns * (2 * self.cell + GUTTER) + (self.columns - 1) * PAIR_GAP + GUTTER
        height = self.rows * (self.cell + GUTTER) + GUTTER
        return width, height

    def origin(self, index: int, cutout: bool) -> tuple[int, int]:
        """(x, y) of the top-left pixel of pair ``index``'s original (or, with ``cutout``, its cut-out)."""
        row, column = divmod(index, self.columns)
        x = GUTTER + column * (2 * self.cell + GUTTER + PAIR_GAP) + (self.cell + GUTTER if cutout else 0)
        return x, GUTTER + row * (self.cell + GUTTER)


def cutout_grid(cell: int = 200, columns: int = 3, model: str = "toonout",
                categories: tuple[str, ...] = CATEGORIES, seed: int = 0) -> tuple[np.ndarray, Grid, str]:
    """Draw ``categories`` at ``cell`` pixels, matte them, and lay them out: (RGB picture, its grid, engine).

    ``model`` is handed to ``Matter`` as ``--model`` is; without its weights (offline, empty cache) the
    classical fallback makes the mattes, and the engine returned says so.
    """
    from annotate.preview import CHECKERBOARD, cutout_rgba, view
    from benchmarks.fallback_cases import make_case
    from toonmatte import Matter

    if cell < 32:
        raise ValueError(f"A cell of {cell} px is too small to show a character; use 32 or more.")
    if columns < 1:
        raise ValueError(f"The grid needs at least one pair a row, not {columns}.")
    matter = Matter(model=model)
    cases = [make_case(category, cell, seed) for category in categories]
    mattes = matter.predict_batch([case.rgb for case in cases])
    grid = Grid(len(cases), columns, cell)
    width, height = grid.size
    picture = np.empty((height, width, 3), np.uint8)
    picture[...] = GUTTER_RGB
    for index, (case, matte) in enumerate(zip(cases, mattes)):
        shown = view(cutout_rgba(matte.image, matte.alpha), CHECKERBOARD)
        for is_cutout, cell_rgb in ((False, case.rgb), (True, shown)):
            x, y = grid.origin(index, is_cutout)
            picture[y:y + cell, x:x + cell] = cell_rgb
    return picture, grid, matter.title


def save_small_png(picture: np.ndarray, path: Path, colours: int = 0) -> int:
    """Write ``picture`` as an optimized PNG (with ``colours``, palette-quantized to that many); returns its bytes."""
    image = Image.fromarray(picture)
    if colours:
        image = image.quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
    return path.stat().st_size


def studio_screenshot(path: Path, image_side: int = 768, scale: float = 0.75) -> Path:
    """Photograph the studio with one drawn image loaded and matted (offline: the classical engine).

    Needs Debian's Chromium and Playwright, as ``benchmarks.studio_browser`` does. ``scale`` shrinks the
    screenshot (1400x1000 viewport) to keep the file small.
    """
    import cv2
    from playwright.sync_api import sync_playwright

    from benchmarks.fallback_cases import make_case
    from benchmarks.studio_browser import CHROMIUM, FLAGS, preview_changed, start_app

    with tempfile.TemporaryDirectory(prefix="toonmatte-readme-") as folder:
        workdir = Path(folder)
        source = workdir / "images" / "heroine.png"
        source.parent.mkdir(parents=True)
        Image.fromarray(make_case("floor_shadow", image_side, seed=1).rgb).save(source)
        process, url = start_app(workdir)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
                page = browser.new_page(viewport=SCREEN)
                page.goto(url)
                page.wait_for_selector("#load-queue")
                page.locator("#uploads input[type=file]").set_input_files(str(source))
                page.wait_for_selector(f"#uploads td.filename[aria-label='{source.name}']", timeout=120_000)
                shown = preview_changed(page)
                page.click("#load-queue")
                page.wait_for_function(shown, timeout=120_000)
                page.add_style_tag(content=".toast-wrap { display: none !important; }")  # "Loaded 1 images"
                page.wait_for_timeout(1000)  # let the editor's canvas and the progress line settle
                shot = workdir / "studio.png"
                page.screenshot(path=str(shot), full_page=False)
                browser.close()
        finally:
            process.terminate()
            process.wait(30)
        rgb = np.asarray(Image.open(shot).convert("RGB"))
        if scale != 1.0:
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        save_small_png(rgb, path, colours=128)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.readme_images", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"),
                        help="folder to write into (default docs/images)")
    parser.add_argument("--cell", type=int, default=200, help="side of each cell of the grid in pixels (default 200)")
    parser.add_argument("--columns", type=int, default=3, help="pairs (original | cut-out) per row (default 3)")
    parser.add_argument("--model", default="toonout", help="the model to matte with (default toonout; offline the "
                                                           "classical fallback)")
    parser.add_argument("--screenshot-scale", type=float, default=0.75,
                        help="shrink factor of the 1400x1000 studio screenshot (default 0.75)")
    parser.add_argument("--no-screenshot", action="store_true", help="only the grid (no Chromium needed)")
    args = parser.parse_args(argv)
    try:
        picture, _, engine = cutout_grid(args.cell, args.columns, args.model)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    grid_path = args.out / "cutouts.png"
    size = save_small_png(picture, grid_path, colours=256)
    print(f"{grid_path}: {picture.shape[1]}x{picture.shape[0]}, {size // 1024} KB, mattes by the {engine}")
    if not args.no_screenshot:
        shot = studio_screenshot(args.out / "studio.png", scale=args.screenshot_scale)
        print(f"{shot}: {shot.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
