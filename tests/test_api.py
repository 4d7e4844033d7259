import threading
from pathlib import Path

import numpy as np
import pytest

from annotate.api import save_file
from annotate.queue import register
from conftest import draw_toon, save_png
from toonmatte.dataset import DatasetStore, hash_file
from toonmatte.dataset import store as store_module
from toonmatte.errors import BadImageError
from toonmatte.imaging.foreground import estimate_foreground


def test_a_save_between_anothers_files_and_index_row_keeps_the_stem(tmp_path: Path, monkeypatch) -> None:
    """The second save of a new image arrives while the first has written its files but not yet indexed them."""
    store = DatasetStore(tmp_path / "dataset")
    rgb, alpha = draw_toon(40, 40, seed=2)
    source, masks = tmp_path / "race.png", [tmp_path / "mask0.png", tmp_path / "mask1.png"]
    save_png(source, rgb)
    for i, mask in enumerate(masks):
        save_png(mask, np.full_like(alpha, 255 * i))
    stems: list[str] = []
    second = threading.Thread(target=lambda: stems.append(save_file(store, source, masks[1])[0]))

    def pause(step: str) -> None:
        if step == "history-staged" and not second.is_alive() and not stems:
            second.start()
            second.join(1.0)  # unfixed, it finishes here under another stem; fixed, it waits for the naming lock

    monkeypatch.setattr(store_module, "_fault_point", pause)
    stems.insert(0, save_file(store, source, masks[0])[0])
    second.join(60)
    assert stems == ["race", "race"]


def test_two_files_with_one_name_queued_at_once_get_two_stems(tmp_path: Path, monkeypatch) -> None:
    """The second file is registered after the first chose its stem but before it indexed it."""
    store = DatasetStore(tmp_path / "dataset")
    sources = [tmp_path / "a" / "pic.png", tmp_path / "b" / "pic.png"]
    for seed, source in enumerate(sources):
        source.parent.mkdir()
        save_png(source, draw_toon(32, 32, seed=seed)[0])
    stems: list[str] = []
    second = threading.Thread(target=lambda: stems.extend(item.stem for item in register(store, [sources[1]])))
    choose = store.stem_for

    def stem_for(name: str, source_hash: str | None = None) -> str:
        stem = choose(name, source_hash)
        if not second.is_alive() and not stems:
            second.start()
            second.join(1.0)  # unfixed, it takes the same free stem here; fixed, it waits for the naming lock
        return stem

    monkeypatch.setattr(store, "stem_for", stem_for)
    stems[:0] = [item.stem for item in register(store, [sources[0]])]
    second.join(60)
    assert stems[0] == "pic" and stems[1].startswith("pic-")
    assert {record.stem: record.source_path for record in store.items()} == {
        stems[0]: str(sources[0]), stems[1]: str(sources[1])}


def test_a_mask_with_the_subject_in_its_alpha_is_stored_as_that_alpha(tmp_path: Path) -> None:
    """White RGB with the subject in the alpha channel: before, the whole image became subject."""
    store = DatasetStore(tmp_path / "dataset")
    rgb, alpha = draw_toon(48, 40, seed=3)
    source, mask = tmp_path / "shot.png", tmp_path / "mask.png"
    save_png(source, rgb)
    save_png(mask, np.dstack([np.full_like(rgb, 255), alpha]))
    stem, warnings = save_file(store, source, mask)
    _, gt, an = store.load_triple(stem)
    assert np.array_equal(gt, alpha) and warnings == []
    assert np.array_equal(an[..., :3], estimate_foreground(rgb, alpha)) and np.array_equal(an[..., 3], alpha)
    record = store.get(stem)
    assert record.source_hash == hash_file(source) and record.changed_fraction is None  # no prediction to compare


def test_a_uniform_mask_is_saved_with_a_warning(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "dataset")
    rgb, _ = draw_toon(48, 40, seed=3)
    source, mask = tmp_path / "shot.png", tmp_path / "mask.png"
    save_png(source, rgb)
    save_png(mask, np.full(rgb.shape[:2], 255, np.uint8))
    stem, warnings = save_file(store, source, mask)
    assert stem == "shot" and len(warnings) == 1 and "all subject" in warnings[0]


def test_a_mask_header_claiming_13000x13000_is_refused_before_decoding(tmp_path: Path) -> None:
    from test_imageio import gray_png_header_only

    store = DatasetStore(tmp_path / "dataset")
    source, mask = tmp_path / "shot.png", tmp_path / "upload" / "bomb.png"
    save_png(source, draw_toon(48, 40, seed=3)[0])
    mask.parent.mkdir()
    mask.write_bytes(gray_png_header_only(13_000, 13_000))
    with pytest.raises(BadImageError) as error:
        save_file(store, source, mask)
    message = str(error.value)
    assert "bomb.png" in message and "13000x13000" in message and "downscale" in message
    assert str(mask.parent) not in message  # the upload's name only, not the server's folder
    assert store.items() == [] and not list((tmp_path / "dataset").rglob("*.png"))
