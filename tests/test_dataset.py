"""Listing ToonOut's dataset layout and reading mattes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from toonmatte.dataset import describe_missing, incomplete_items, list_items
from toonmatte.errors import ToonmatteError


def touch_png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(path)


def test_list_items_reads_the_layout(tmp_path):
    for rel in ["train/g1/im/a.png", "train/g1/gt/a.png", "train/g1/an/a.png", "test/g2/im/b.png", "test/g2/gt/b.png",
                "loose/im/c.png", ".index/g/im/x.png", "train/.history/im/a.png", "train/g1/im/.tmp-a.png"]:
        touch_png(tmp_path / rel)
    (tmp_path / "train/g1/im/notes.txt").write_text("not an image")
    items = list_items(tmp_path)
    assert [item.name for item in items] == ["loose/c", "test/g2/b", "train/g1/a"]
    loose, b, a = items
    assert loose.split is None and loose.missing == ("gt", "an")
    assert a.complete and a.im == tmp_path / "train/g1/im/a.png"
    assert b.missing == ("an",)
    assert [item.name for item in incomplete_items(items)] == ["loose/c", "test/g2/b"]
    assert describe_missing(incomplete_items(items), limit=1) == "loose/c (missing gt, an), and 1 more"
    assert [item.name for item in list_items(tmp_path, splits=["test"])] == ["test/g2/b"]


def test_list_items_errors(tmp_path):
    with pytest.raises(ToonmatteError, match="does not exist"):
        list_items(tmp_path / "missing")
    with pytest.raises(ToonmatteError, match="Unknown split"):
        list_items(tmp_path, splits=["dev"])
