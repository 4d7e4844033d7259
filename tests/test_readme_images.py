"""``scripts/readme_images.py``: the README's grid of drawn characters and their cut-outs.

The grid is made at a tiny size with the classical engine (offline, as in every test) and read back
from the PNG the script writes: pairs of cells at the places ``Grid`` says, each original the drawn
image itself, each cut-out showing the studio's checkerboard where the drawing had its backdrop and
the character's own colours where it had the character. The studio screenshot needs Chromium and a
running studio, so it is not run here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotate.preview import checkerboard
from benchmarks.fallback_cases import make_case
from scripts import readme_images
from scripts.readme_images import GUTTER, GUTTER_RGB, Grid

CELL = 64
CATEGORIES = ("plain_grey", "dark_on_dark", "prop_held")


def test_grid_layout_and_cutout_cells(tmp_path: Path) -> None:
    picture, grid, engine = readme_images.cutout_grid(CELL, columns=2, model="fallback", categories=CATEGORIES)
    assert engine == "classical fallback"
    path = tmp_path / "cutouts.png"
    readme_images.save_small_png(picture, path)
    written = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(written, picture)

    assert grid == Grid(pairs=3, columns=2, cell=CELL)
    assert grid.rows == 2
    width = GUTTER + 2 * (2 * CELL + GUTTER) + readme_images.PAIR_GAP  # two pairs a row
    height = GUTTER + 2 * (CELL + GUTTER)
    assert grid.size == (width, height)
    assert written.shape == (height, width, 3)
    assert np.all(written[:GUTTER] == GUTTER_RGB) and np.all(written[:, :GUTTER] == GUTTER_RGB)
    x, y = grid.origin(2, cutout=True)  # the last row holds one pair: the rest of it is gutter
    assert np.all(written[y:y + CELL, x + CELL:] == GUTTER_RGB)

    board = checkerboard(CELL, CELL)
    for index, category in enumerate(CATEGORIES):
        case = make_case(category, CELL, 0)
        x, y = grid.origin(index, cutout=False)
        assert np.array_equal(written[y:y + CELL, x:x + CELL], case.rgb), category
        x, y = grid.origin(index, cutout=True)
        cut = written[y:y + CELL, x:x + CELL].astype(int)
        backdrop = case.alpha == 0
        shows_board = np.all(cut == board, axis=2)
        assert shows_board[backdrop].mean() > 0.9, f"{category}: the backdrop should be cut away"
        subject = case.alpha == 255
        assert shows_board[subject].mean() < 0.05, f"{category}: the character should stay"
        assert np.abs(cut[subject] - case.rgb[subject].astype(int)).mean() < 20, category


def test_cell_and_columns_are_checked() -> None:
    with pytest.raises(ValueError, match="too small"):
        readme_images.cutout_grid(8, model="fallback")
    with pytest.raises(ValueError, match="at least one pair"):
        readme_images.cutout_grid(CELL, columns=0, model="fallback")
