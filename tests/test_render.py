"""What the studio shows: an item's cached renders (updated where the matte changed), the files the
Renderer hands the browser, saving from those caches, and the editor that decodes only strokes."""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from annotate import editing, preview
from annotate.editing import TINT_COLOR, TINT_OPACITY, Item
from annotate.render import Renderer
from annotate.strokes import BACKGROUND_COLOR, FOREGROUND_COLOR, tint
from conftest import draw_toon
from toonmatte.dataset import DatasetStore
from toonmatte.errors import ToonmatteError
from toonmatte.imaging.foreground import estimate_foreground


def read(path: str | Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).copy()


def png_array(data: bytes) -> np.ndarray:
    return read(io.BytesIO(data))


@pytest.fixture
def item() -> Item:
    rgb, alpha = draw_toon(120, 96, seed=1)
    return Item("toon", rgb, alpha, alpha.copy(), "fallback", "v")


def painted(item: Item) -> dict:
    layer = np.zeros((*item.alpha.shape, 4), np.uint8)
    layer[2:10, 2:20] = (*FOREGROUND_COLOR, 255)  # backdrop -> subject
    layer[90:100, 40:50] = (*BACKGROUND_COLOR, 255)  # body -> backdrop
    return {"background": None, "layers": [layer], "composite": None}


def test_renders_of_an_edited_item_equal_fresh_ones(item: Item) -> None:
    renders = (item.foreground(), item.tint(), item.tint_png(), item.cutout_png(True), item.alpha_png())
    edited, changed = editing.apply_editor(item, painted(item))
    assert changed and edited.unsaved and not item.unsaved
    fresh = Item("toon", item.image, item.predicted, edited.alpha, "fallback", "v")
    assert np.abs(edited.foreground().astype(int) - estimate_foreground(item.image, edited.alpha)).max() <= 1
    assert np.array_equal(edited.tint(), tint(item.image, edited.alpha, TINT_COLOR, TINT_OPACITY))
    assert np.array_equal(png_array(edited.tint_png().tobytes()), fresh.tint())
    assert np.array_equal(png_array(edited.alpha_png().tobytes()), edited.alpha)
    assert np.array_equal(png_array(edited.cutout_png(True).tobytes()), edited.cutout(True))
    assert np.array_equal(png_array(edited.cutout_png(False).tobytes()), np.dstack([item.image, edited.alpha]))
    assert np.array_equal(png_array(renders[2].tobytes()), item.tint())  # the first item's renders are kept
    assert edited.saved().unsaved is False
    reset = edited.with_alpha(item.predicted)
    assert np.array_equal(png_array(reset.tint_png().tobytes()), item.tint())


def test_renderer_files(item: Item, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preview, "PREVIEW_SIDE", 48)
    renderer = Renderer(tmp_path / "files")
    value = renderer.editor_background(item)
    assert np.array_equal(read(value), item.tint())
    assert renderer.editor_background(item) == value  # written once per matte
    stage = renderer.editor(item)
    assert f'src="gradio_api/file={value}"' in stage and 'data-width="96" data-height="120"' in stage

    shown, (before, after) = renderer.views(item, preview.CHECKERBOARD, None, True)
    assert after == shown and read(shown).shape == (48, 38, 3) and read(before).shape == (48, 38, 3)
    alpha_view, _ = renderer.views(item, preview.ALPHA, None, True)
    assert np.array_equal(read(alpha_view), preview.thumbnail(item.alpha, 48))
    white, _ = renderer.views(item, preview.WHITE, None, False)
    small = preview.compose(item.small_image(), item.small_alpha(), preview.WHITE)
    assert np.abs(read(white).astype(int) - small).mean() < 3  # JPEG, close to the composite

    cut, mask = renderer.downloads(item, True)
    assert (Path(cut).name, Path(mask).name) == ("toon.png", "toon_mask.png")
    assert np.array_equal(read(mask), item.alpha)
    rgba = read(cut)
    assert np.array_equal(rgba[..., 3], item.alpha) and np.array_equal(rgba[..., :3], item.foreground())

    edited, _ = editing.apply_editor(item, painted(item))
    _, (before_again, _) = renderer.views(edited, preview.CHECKERBOARD, None, True)
    assert before_again == before  # the original image's preview is shared by every matte of it
    assert renderer.editor_background(edited) != value

    Path(cut).unlink()  # pruned while the item stays open: written again
    again, _ = renderer.downloads(item, True)
    assert again != cut and np.array_equal(read(again)[..., 3], item.alpha)


def test_renderer_writes_where_gradio_serves_files_as_they_are(item: Item, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    import gradio as gr

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    renderer = Renderer()
    background = renderer.editor_background(item)
    assert Path(background).is_relative_to(tmp_path / "gradio")
    shown = gr.Image(type="filepath", render=False)
    assert shown.move_resource_to_block_cache(background) == background  # no hash, no copy
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(Path(background).read_bytes())
    assert shown.move_resource_to_block_cache(str(outside)) != str(outside)  # what the cache saves

    shutil.rmtree(renderer.folder)  # Gradio's cache clean-up took the folder: files are written again
    cut, _ = renderer.downloads(item, True)
    assert Path(cut).is_relative_to(renderer.folder) and np.array_equal(read(cut)[..., 3], item.alpha)


def test_save_stores_the_cached_encodings_exactly(item: Item, tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "dataset", generation="g1")
    edited, _ = editing.apply_editor(item, painted(item))
    assert editing.save(store, edited, "tester") == "toon"
    im, gt, an = store.load_triple("toon")
    assert np.array_equal(im, item.image) and np.array_equal(gt, edited.alpha)
    assert np.array_equal(an, edited.cutout(True))
    assert store.get("toon").changed_fraction == pytest.approx(np.mean(edited.alpha != item.predicted))
    assert np.array_equal(store.prediction_pair("toon")[0], item.predicted)
    assert editing.triple(edited).changes == pytest.approx(
        (np.mean(edited.alpha != item.predicted), np.abs(edited.alpha.astype(int) - item.predicted).mean()))


def test_a_large_image_is_shown_scaled_down_and_edited_at_full_resolution(item: Item, tmp_path: Path,
                                                                          monkeypatch) -> None:
    monkeypatch.setattr(editing, "EDITOR_MAX_SIDE", 48)  # the 120x96 item counts as "large"
    assert item.editor_size() == (48, 38)
    background = read(Renderer(tmp_path).editor_background(item))
    assert background.shape == (48, 38, 3)
    layer = np.zeros((48, 38, 4), np.uint8)
    layer[0:4, 0:6] = (*FOREGROUND_COLOR, 255)  # the backdrop's top-left corner, on the small canvas
    edited, painted = editing.apply_editor(item, {"layers": [layer]})
    assert painted
    reach = cv2.resize(layer[..., 3], (96, 120), interpolation=cv2.INTER_NEAREST) > 0  # about 10x15 pixels
    assert reach.sum() >= 10 * 15 and (edited.alpha[reach] == 255).all()
    assert not (edited.alpha != item.alpha)[~reach].any()
    monkeypatch.setattr(editing, "EDITOR_MAX_SIDE", 4096)
    assert item.editor_size() == item.alpha.shape


def test_a_preview_file_that_cannot_be_written_is_one_sentence_without_server_paths(item: Item, tmp_path: Path) -> None:
    renderer = Renderer(tmp_path / "files")
    for child in renderer.folder.iterdir():
        child.rmdir()
    renderer.folder.rmdir()
    renderer.folder.write_bytes(b"a file where the folder was")  # every write under it fails
    with pytest.raises(ToonmatteError) as raised:
        renderer.editor_background(item)
    message = str(raised.value)
    assert message.startswith("Cannot write the studio's preview files") and str(tmp_path) not in message
