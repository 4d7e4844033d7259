"""The read-only Try it mode: matte several images into a zip, and fetch only public image links."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotate.api import OutputFolder
from annotate.engine import Engine
from annotate.tryit import fetch_url, matte_many
from conftest import draw_toon
from toonmatte.errors import BadImageError, ToonmatteError


def test_several_images_give_cutouts_and_one_zip_and_bad_files_are_named(tmp_path: Path) -> None:
    engine = Engine(model="fallback").start()
    paths = []
    for i in range(2):
        folder = tmp_path / f"upload{i}"
        folder.mkdir()
        paths.append(folder / "shot.png")  # two uploads with one name
        Image.fromarray(draw_toon(48, 40, seed=i)[0]).save(paths[-1])
    (tmp_path / "junk.png").write_bytes(b"not an image")
    outputs = OutputFolder(tmp_path / "out")
    entries, bundle, warnings = matte_many(engine, [str(p) for p in paths] + [str(tmp_path / "junk.png")], outputs)
    assert len(entries) == 2 and len(warnings) == 1 and "junk.png" in warnings[0]
    with zipfile.ZipFile(bundle) as archive:
        assert sorted(archive.namelist()) == ["shot-2.png", "shot.png", "shot_mask-2.png", "shot_mask.png"]
        with archive.open("shot.png") as member:
            assert np.asarray(Image.open(member)).shape == (48, 40, 4)
    assert not (tmp_path / "dataset").exists()  # nothing stored
    with pytest.raises(ToonmatteError, match="Choose one or more images"):
        matte_many(engine, [], outputs)


@pytest.mark.parametrize("url, phrase", [("ftp://example.com/a.png", "http(s)"), ("not a link", "http(s)"),
                                         ("http://127.0.0.1:7860/file.png", "not a public address"),
                                         ("http://10.0.0.5/a.png", "not a public address"),
                                         ("http://localhost/a.png", "not a public address")])
def test_links_to_private_addresses_and_other_schemes_are_refused(tmp_path: Path, url: str, phrase: str) -> None:
    with pytest.raises(BadImageError, match=phrase):
        fetch_url(url, tmp_path)
    assert not list(tmp_path.iterdir())
