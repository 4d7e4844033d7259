"""The evaluate command on tiny datasets built here."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, draw_toon
from conftest import save_png as save
from toonmatte.cli import main
from toonmatte.commands.evaluate import COLUMNS
from toonmatte.evaluation.metrics import LOWER_IS_BETTER, METRIC_KEYS, image_metrics, pixel_accuracy


def make_pairs(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """gt/ and pred/ folders: a perfect prediction, a damaged one, plus unmatched files on both sides."""
    pairs = {}
    for seed, stem in enumerate(["alpha_one", "beta_two"]):
        _, gt = draw_toon(48, 40, seed=seed)
        pred = gt.copy()
        if seed:
            pred[:12, :12] = 255  # a false-positive corner
        save(root / "gt" / f"{stem}.png", gt)
        save(root / "pred" / f"{stem}.png", pred)
        pairs[stem] = (pred, gt)
    save(root / "pred" / "alpha_one_rgba.png", np.zeros((48, 40, 4), np.uint8))  # predict's cut-out: ignored
    _, gt = draw_toon(48, 40, seed=5)
    save(root / "gt" / "gamma.png", gt)
    save(root / "pred" / "gamma_rgba.png", np.dstack([np.zeros((48, 40, 3), np.uint8), gt]))  # a cut-out alone counts
    pairs["gamma"] = (gt, gt)
    save(root / "pred" / "orphan.png", np.zeros((48, 40), np.uint8))
    save(root / "gt" / "unpredicted.png", np.zeros((48, 40), np.uint8))
    return pairs


def test_pairs_by_stem_and_writes_json_and_csv(tmp_path, capsys):
    pairs = make_pairs(tmp_path)
    out_json, out_csv = tmp_path / "scores.json", tmp_path / "scores.csv"
    code = main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"),
                 "--json", str(out_json), "--csv", str(out_csv)])
    assert code == 0
    out = capsys.readouterr().out
    assert "1 predictions in" in out and "orphan" in out
    assert "1 ground truths in" in out and "unpredicted" in out
    assert "mean (3)" in out and "PixAcc" in out

    report = json.loads(out_json.read_text())
    assert set(report["per_image"]) == {"alpha_one", "beta_two", "gamma"}
    for stem, (pred, gt) in pairs.items():
        assert report["per_image"][stem] == pytest.approx(image_metrics(pred, gt))
    assert set(report["mean"]) == set(METRIC_KEYS)
    assert report["per_image"]["alpha_one"]["pixel_accuracy"] == 1.0
    assert report["mean"]["pixel_accuracy"] == pytest.approx((2.0 + pixel_accuracy(*pairs["beta_two"])) / 3)
    assert report["mean"]["pixel_accuracy"] < 1.0
    assert report["unmatched"] == {"pred": ["orphan"], "gt": ["unpredicted"]}

    rows = list(csv.DictReader(out_csv.open()))
    assert [row["stem"] for row in rows] == ["alpha_one", "beta_two", "gamma"]
    assert float(rows[1]["iou"]) == pytest.approx(report["per_image"]["beta_two"]["iou"])


def test_hce_is_optional(tmp_path):
    make_pairs(tmp_path)
    out_json = tmp_path / "scores.json"
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--json", str(out_json)]
    assert main(args) == 0
    assert "hce" not in json.loads(out_json.read_text())["mean"]
    assert main(args + ["--hce"]) == 0
    assert "hce" in json.loads(out_json.read_text())["mean"]


def test_size_mismatch_is_skipped_and_reported(tmp_path, capsys):
    make_pairs(tmp_path)
    save(tmp_path / "pred" / "beta_two.png", np.zeros((10, 10), np.uint8))
    out_json = tmp_path / "scores.json"
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--json",
                 str(out_json)]) == 0
    assert "skipped beta_two: prediction is 10x10 but ground truth is 40x48" in capsys.readouterr().out
    report = json.loads(out_json.read_text())
    assert list(report["per_image"]) == ["alpha_one", "gamma"] and "beta_two" in report["skipped"]


def test_nothing_to_pair_and_bad_arguments_are_one_line_errors(tmp_path, capsys):
    save(tmp_path / "pred" / "a.png", np.zeros((4, 4), np.uint8))
    save(tmp_path / "gt" / "b.png", np.zeros((4, 4), np.uint8))
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt")]) == 1
    assert main(["evaluate", "--pred", str(tmp_path / "pred")]) == 1
    assert main(["evaluate", "--models", "fallback"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors)


def test_subprocess_entry_point(tmp_path):
    make_pairs(tmp_path)
    out_json = tmp_path / "scores.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-m", "toonmatte", "evaluate", "--pred", str(tmp_path / "pred"),
                             "--gt", str(tmp_path / "gt"), "--json", str(out_json)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(out_json.read_text())
    assert set(report) >= {"per_image", "mean"}
    assert set(report["mean"]) == set(METRIC_KEYS)


def make_split(root: Path, split: str = "test", n: int = 2) -> None:
    for seed in range(n):
        rgb, alpha = draw_toon(64, 48, seed=seed)
        save(root / split / "gen1" / "im" / f"toon{seed}.png", rgb)
        save(root / split / "gen1" / "gt" / f"toon{seed}.png", alpha)
        save(root / split / "gen1" / "an" / f"toon{seed}.png", np.dstack([rgb, alpha]))


def test_models_side_by_side_skips_models_without_weights(tmp_path, capsys):
    make_split(tmp_path / "data")
    make_split(tmp_path / "data", split="train", n=1)
    out_json = tmp_path / "ab.json"
    code = main(["evaluate", "--models", "toonout,fallback", "--data", str(tmp_path / "data"), "--split", "test",
                 "--device", "cpu", "--json", str(out_json)])
    assert code == 0
    out = capsys.readouterr().out
    skipped = [line for line in out.splitlines() if line.startswith("toonout: skipped")]
    assert len(skipped) == 1
    assert "fallback" in out.splitlines()[-len(METRIC_KEYS) - 3]  # the table's header names the model
    report = json.loads(out_json.read_text())
    assert list(report["models"]) == ["fallback"] and "toonout" in report["unavailable"]
    fallback = report["models"]["fallback"]
    assert fallback["engine"] == "fallback"
    assert set(fallback["per_image"]) == {"gen1/toon0", "gen1/toon1"}  # the test split only
    assert 0.0 <= fallback["mean"]["pixel_accuracy"] <= 1.0


def test_models_all_unavailable(tmp_path, capsys):
    make_split(tmp_path / "data", n=1)
    missing = tmp_path / "missing.pth"
    assert main(["evaluate", "--models", f"toonout,toonout={missing}", "--data", str(tmp_path / "data")]) == 1
    captured = capsys.readouterr()
    assert "No model produced a score" in captured.err
    assert f"toonout={missing}: skipped, The weights file {missing} does not exist" in captured.out
    assert sum(line.startswith("toonout") for line in captured.out.splitlines()) == 2


def test_identical_prediction_and_gt_files_score_perfectly(tmp_path, capsys):
    """Issue 14: bit-identical prediction and gt PNGs must give MAE 0 and perfect scores on every metric."""
    soft = draw_toon(64, 56, seed=3)[1]
    mattes = {
        "soft": soft,
        "binary": np.where(soft > 128, 255, 0).astype(np.uint8),
        "never_255": (soft.astype(np.float64) * 200 / 255).round().astype(np.uint8),
        "ramp": np.tile(np.linspace(40, 200, 56).round().astype(np.uint8), (64, 1)),
        "all_0": np.zeros((64, 56), np.uint8),
        "all_255": np.full((64, 56), 255, np.uint8),
    }
    for stem, alpha in mattes.items():
        save(tmp_path / "gt" / f"{stem}.png", alpha)
        save(tmp_path / "pred" / f"{stem}.png", alpha)
        assert (tmp_path / "gt" / f"{stem}.png").read_bytes() == (tmp_path / "pred" / f"{stem}.png").read_bytes()
    out_json = tmp_path / "scores.json"
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--hce",
                 "--json", str(out_json)]) == 0
    report = json.loads(out_json.read_text())
    assert set(report["per_image"]) == set(mattes)
    for stem, scores in [*report["per_image"].items(), ("mean", report["mean"])]:
        assert set(scores) == set(METRIC_KEYS) | {"hce"}
        for key, value in scores.items():
            expected = 0.0 if key in LOWER_IS_BETTER else 1.0
            assert value == pytest.approx(expected, abs=1e-12), (stem, key)
    mean_row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("mean ("))
    header = ["image", *(COLUMNS[key] for key in report["mean"])]
    printed = dict(zip(header[1:], mean_row.split()[2:]))
    assert printed["MAE"] == "0.0000" and printed["HCE"] == "0.0"
    assert all(printed[COLUMNS[key]] == "1.0000" for key in METRIC_KEYS if key not in LOWER_IS_BETTER)
