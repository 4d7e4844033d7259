"""``python -m toonmatte predict``: batches of files, folders and globs; bad files never stop a batch."""
from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, draw_toon
from toonmatte.cli import main
from toonmatte.model.birefnet import BiRefNetConfig, build_model


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for seed in range(2):
        Image.fromarray(draw_toon(96, 80, seed=seed)[0]).save(folder / f"toon{seed}.png")
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[16:48, 16:48] = (200, 40, 40, 255)
    Image.fromarray(rgba, "RGBA").save(folder / "sticker.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image")
    good = Image.new("RGB", (64, 64))
    good.save(folder / "truncated.png")
    data = (folder / "truncated.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    return folder


def test_fallback_batch_reports_bad_files_and_finishes_the_rest(inputs, tmp_path, capsys, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        status = main(["predict", str(inputs), "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 1
    assert "TOONMATTE_WEIGHTS" in caplog.text and "fallback" in caplog.text
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 3 and all("Traceback" not in line for line in errors)
    for stem in ("toon0", "toon1", "sticker"):
        alpha = np.asarray(Image.open(out / f"{stem}.png"))
        rgba = Image.open(out / f"{stem}_rgba.png")
        assert alpha.dtype == np.uint8 and alpha.ndim == 2
        assert rgba.mode == "RGBA" and np.array_equal(np.asarray(rgba)[..., 3], alpha)
    sticker = np.asarray(Image.open(out / "sticker.png"))
    assert sticker[32, 32] > 200 and sticker[2, 2] < 50  # the opaque square is foreground, gray is background
    assert not (out / "empty.png").exists() and not (out / "truncated_rgba.png").exists()


def test_weights_given_by_path_are_used(inputs, tmp_path, capsys):
    torch.manual_seed(0)
    weights = tmp_path / "tiny.pth"
    torch.save({f"module.{k}": v for k, v in build_model(BiRefNetConfig.tiny()).state_dict().items()}, weights)
    out = tmp_path / "out"
    status = main(["predict", str(inputs / "toon0.png"), str(inputs / "toon1.png"), "--out", str(out),
                   "--weights", str(weights), "--device", "cpu", "--no-foreground"])
    captured = capsys.readouterr()
    assert status == 0, captured
    assert "ToonOut" in captured.out and "fallback" not in captured.out
    rgba = np.asarray(Image.open(out / "toon0_rgba.png"))
    np.testing.assert_array_equal(rgba[..., :3], draw_toon(96, 80, seed=0)[0])  # --no-foreground keeps raw colours


def test_skip_existing_and_globs(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", str(inputs / "toon*.png"), "--out", str(out), "--model", "fallback"]) == 0
    before = (out / "toon0.png").stat().st_mtime_ns
    assert main(["predict", str(inputs / "toon*.png"), "--out", str(out), "--model", "fallback",
                 "--skip-existing"]) == 0
    assert (out / "toon0.png").stat().st_mtime_ns == before
    assert "2 skipped" in capsys.readouterr().out


def test_missing_input_and_duplicate_stems(tmp_path, capsys):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.fromarray(draw_toon(64, 64)[0]).save(tmp_path / sub / "same.png")
    out = tmp_path / "out"
    status = main(["predict", str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "nope.png"),
                   "--out", str(out), "--model", "fallback"])
    assert status == 1
    assert "nope.png" in capsys.readouterr().err
    assert (out / "same.png").exists() and (out / "same_2.png").exists()


def test_module_entry_point_runs_as_a_process(inputs, tmp_path):
    result = subprocess.run([sys.executable, "-m", "toonmatte", "predict", str(inputs / "empty.png"),
                             "--out", str(tmp_path / "o"), "--model", "fallback"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "empty" in result.stderr


def test_batches_give_the_same_mattes_and_a_bad_file_stays_alone(inputs, tmp_path, capsys):
    torch.manual_seed(0)
    weights = tmp_path / "tiny.pth"
    torch.save(build_model(BiRefNetConfig.tiny()).state_dict(), weights)
    common = ["--weights", str(weights), "--model", "birefnet-dynamic", "--device", "cpu", "--no-foreground"]
    assert main(["predict", str(inputs), "--out", str(tmp_path / "one"), *common]) == 1
    assert main(["predict", str(inputs), "--out", str(tmp_path / "three"), "--batch-size", "3", *common]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 6  # the same three bad files, each reported once per run
    for stem in ("toon0", "toon1", "sticker"):
        one = np.asarray(Image.open(tmp_path / "one" / f"{stem}.png"))
        three = np.asarray(Image.open(tmp_path / "three" / f"{stem}.png"))
        assert np.abs(one.astype(int) - three.astype(int)).max() <= 1


def test_batch_size_must_be_a_positive_whole_number(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["predict", "x.png", "--out", str(tmp_path), "--batch-size", "0"])
    assert "at least 1" in capsys.readouterr().err


def test_a_failed_write_is_reported_alone_and_the_other_outputs_are_complete(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "toon1_rgba.png").mkdir(parents=True)  # a folder where the cut-out should go
    status = main(["predict", str(inputs / "toon*.png"), str(inputs / "sticker.png"), "--out", str(out),
                   "--model", "fallback", "--batch-size", "2"])
    captured = capsys.readouterr()
    assert status == 1
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "toon1_rgba.png" in errors[0] and "Traceback" not in captured.err
    assert "2 of 3 image(s) matted" in captured.out and "1 failed" in captured.out
    for stem in ("toon0", "sticker"):
        alpha = np.asarray(Image.open(out / f"{stem}.png"))
        assert np.array_equal(np.asarray(Image.open(out / f"{stem}_rgba.png"))[..., 3], alpha)
    assert (out / "toon1_rgba.png").is_dir() and not list(out.glob(".*.tmp"))  # nothing half-written left


def test_every_image_is_written_when_batches_outrun_the_writers(tmp_path, monkeypatch, capsys):
    from toonmatte.commands import predict

    monkeypatch.setattr(predict, "writer_threads", lambda: 1)  # batches of 3 wait on a queue of at most 2 mattes
    folder = tmp_path / "in"
    folder.mkdir()
    for seed in range(7):
        Image.fromarray(draw_toon(64, 72, seed=seed)[0]).save(folder / f"t{seed}.png")
    assert main(["predict", str(folder), "--out", str(tmp_path / "out"), "--model", "fallback",
                 "--batch-size", "3"]) == 0
    assert "7 of 7 image(s) matted" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [f"t{seed}.png" for seed in range(7)] + [f"t{seed}_rgba.png" for seed in range(7)])


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_an_output_folder_that_cannot_be_made_is_one_sentence(inputs, tmp_path, capsys, where):
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    out = blocker if where == "file" else blocker / "out"
    assert main(["predict", str(inputs / "toon0.png"), "--out", str(out), "--model", "fallback"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "Errno" not in err
    assert f"The output folder {out} could not be written" in err and "a file stands where a folder should be" in err
    assert blocker.read_text() == "a file, not a folder"


def test_a_read_only_output_folder_is_one_sentence(inputs, tmp_path, capsys, mounts):
    (tmp_path / "out").mkdir()
    view = mounts.read_only_view(tmp_path / "out", tmp_path / "view")
    assert main(["predict", str(inputs / "toon0.png"), "--out", str(view / "sub"), "--model", "fallback"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "read-only" in err and "Traceback" not in err
