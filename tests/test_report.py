"""The HTML quality report on a tiny dataset built here."""
from __future__ import annotations

import base64
import re
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import draw_toon
from conftest import save_png as save
from toonmatte.cli import main
from toonmatte.commands.report import WorstExamples, difference_image

IMAGES = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def make_dataset(root: Path) -> Path:
    """Three test items and one train item; predictions: perfect, slightly off, badly off; one missing."""
    pred_dir = root / "pred"
    damage = {"perfect": 0, "slight": 6, "bad": 30}
    for seed, (stem, size) in enumerate(damage.items()):
        rgb, alpha = draw_toon(300, 200, seed=seed)
        for kind, array in (("im", rgb), ("gt", alpha), ("an", np.dstack([rgb, alpha]))):
            save(root / "data" / "test" / "gen" / kind / f"{stem}.png", array)
        pred = alpha.copy()
        pred[:size * 3, :size * 3] = 255
        save(pred_dir / f"{stem}.png", pred)
    rgb, alpha = draw_toon(64, 64, seed=9)
    save(root / "data" / "train" / "gen" / "im" / "unpredicted.png", rgb)
    save(root / "data" / "train" / "gen" / "gt" / "unpredicted.png", alpha)
    return pred_dir


def test_report_from_predictions(tmp_path, capsys):
    pred_dir = make_dataset(tmp_path)
    out = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "data"), "--out", str(out), "--pred", str(pred_dir), "--worst", "2"]) == 0
    assert "Wrote" in capsys.readouterr().out
    page = out.read_text()
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page
    thumbnails = IMAGES.findall(page)
    assert len(thumbnails) == 2 * 4  # two worst images: image, model alpha, corrected alpha, difference
    first = Image.open(BytesIO(base64.b64decode(thumbnails[0])))
    assert max(first.size) == 256 and first.mode == "RGB"
    assert page.index("test/gen/bad") < page.index("test/gen/slight")  # worst first
    assert "test/gen/perfect" not in page.split("Not scored")[0].split("Worst")[1]
    assert "train/gen/unpredicted: no prediction with this stem" in page
    assert "PixAcc" in page and "images scored: 3" in page


def test_report_on_one_split_with_the_fallback_model(tmp_path):
    make_dataset(tmp_path)
    out = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "data"), "--out", str(out), "--model", "fallback", "--device", "cpu",
                 "--split", "train"]) == 0
    page = out.read_text()
    assert "classical fallback" in page and "images scored: 1" in page
    assert len(IMAGES.findall(page)) == 4


def test_report_errors_are_one_line(tmp_path, capsys):
    pred_dir = make_dataset(tmp_path)
    assert main(["report", str(tmp_path / "data"), "--out", str(tmp_path / "missing" / "r.html"),
                 "--pred", str(pred_dir)]) == 1
    assert main(["report", str(tmp_path / "data"), "--out", str(tmp_path / "r.html"), "--pred", str(pred_dir),
                 "--split", "train"]) == 1  # nothing in train has a prediction
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and "does not exist" in errors[0] and "no prediction" in errors[1]
    assert not (tmp_path / "r.html").exists()


def test_difference_image_colours():
    pred = np.array([[255, 0, 100]], np.uint8)
    gt = np.array([[0, 255, 100]], np.uint8)
    np.testing.assert_array_equal(difference_image(pred, gt)[0], [[255, 0, 0], [0, 0, 255], [0, 0, 0]])


def test_worst_examples_keeps_the_lowest_pixel_accuracy(tmp_path):
    image = tmp_path / "im.png"
    save(image, np.zeros((16, 16, 3), np.uint8))
    alpha = np.zeros((16, 16), np.uint8)
    worst = WorstExamples(2)
    for key, accuracy in [("a", 0.9), ("b", 0.5), ("c", 0.99), ("d", 0.7)]:
        worst.offer(key, {"pixel_accuracy": accuracy, "mae": 0.0}, image, alpha, alpha)
    assert [example.key for example in worst.worst_first()] == ["b", "d"]
