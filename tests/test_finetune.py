"""``python -m toonmatte finetune`` on the CPU with the tiny model, on datasets drawn here.

One uninterrupted run (module fixture) is the reference: its files, its checkpoint through the
studio's loader, predict and evaluate with it, and an interrupted-then-resumed run that must end
with the same weights.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from conftest import REPO, draw_toon, save_png
from toonmatte.cli import main
from toonmatte.model.birefnet import BiRefNetConfig, build_model
from toonmatte.training import loop

SIZE = 64
COMMON = ["--init", "random", "--config", "tiny", "--size", str(SIZE), "--batch-size", "2", "--lr", "2e-3",
          "--workers", "0"]


def make_dataset(root: Path, counts: dict[str, int], height: int = 72, width: int = 64) -> Path:
    """Toon characters on greys of several shades, as im/gt/an triples; returns ``root``."""
    seed = 0
    for split, count in counts.items():
        for _ in range(count):
            rgb, alpha = draw_toon(height, width, background=90 + 12 * seed, seed=seed)
            for kind, array in (("im", rgb), ("gt", alpha), ("an", np.dstack([rgb, alpha]))):
                save_png(root / split / "gen1" / kind / f"toon{seed}.png", array)
            seed += 1
    return root


def finetune(data: Path, out: Path, *extra: str) -> int:
    return main(["finetune", "--data", str(data), "--out", str(out), *COMMON, *extra])


def metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"), {"train": 4, "val": 2, "test": 2})


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    """Two epochs of two optimizer steps each, uninterrupted."""
    out = tmp_path_factory.mktemp("runs") / "reference"
    assert finetune(data, out, "--epochs", "2") == 0
    return out


def test_a_run_writes_weights_metrics_card_and_curves(run):
    rows = metrics(run)
    assert [row["epoch"] for row in rows] == ["1", "2"] and [row["step"] for row in rows] == ["2", "4"]
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])  # a few steps lower the loss
    for row in rows:
        assert 0.0 <= float(row["val_pa"]) <= 1.0 and 0.0 <= float(row["val_mae"]) <= 1.0
    assert float(rows[1]["lr"]) == pytest.approx(1e-3)  # halved after the first of two epochs
    card = json.loads((run / "card.json").read_text())
    assert card["weights"] == "best.safetensors" and card["init"]["name"] == "random"
    assert card["data"]["counts"] == {"train": 4, "val": 2} and len(card["data"]["hash"]) == 64
    assert card["epochs_completed"] == 2 and card["steps"] == 4 and len(card["metrics"]) == 2
    assert card["training"]["size"] == SIZE and card["training"]["processes"] == 1
    assert {"torch", "accelerate", "python"} <= set(card["versions"])
    assert card["best"]["val_pa"] == max(float(row["val_pa"]) for row in rows)
    assert card["weights_sha256"] == card["best"]["weights_sha256"]
    with Image.open(run / "curves.png") as curves:
        assert curves.format == "PNG" and curves.width > curves.height
    states = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert states == ["step-00000004"]  # the latest complete state only, no temporary left


def test_best_checkpoint_loads_strictly_through_the_studios_loader(run):
    from toonmatte.pipeline import Matter

    state = load_file(run / "best.safetensors")
    assert set(state) == set(build_model(BiRefNetConfig.tiny()).state_dict())  # no prefixes, nothing missing
    card = json.loads((run / "card.json").read_text())
    for matter in (Matter("toonout", weights=run / "best.safetensors", device="cpu", allow_fallback=False),
                   Matter(str(run), device="cpu", allow_fallback=False)):
        assert not matter.is_fallback
        assert matter.engine == "reference/best.safetensors" and matter.title == "fine-tune reference"
        assert matter.version == card["weights_sha256"][:12] and matter.spec.resolution == SIZE
    alpha = matter.predict(np.asarray(draw_toon(50, 40)[0])).alpha
    assert alpha.shape == (50, 40) and alpha.dtype == np.uint8


def test_predict_and_evaluate_use_the_run(run, data, tmp_path, capsys):
    image = data / "test" / "gen1" / "im" / "toon6.png"
    assert main(["predict", str(image), "--out", str(tmp_path / "out"), "--weights", str(run / "best.safetensors"),
                 "--device", "cpu", "--no-foreground"]) == 0
    assert "fine-tune reference" in capsys.readouterr().out
    assert np.asarray(Image.open(tmp_path / "out" / "toon6.png")).shape == (72, 64)
    page, scores = tmp_path / "compare.html", tmp_path / "scores.json"
    assert main(["evaluate", "--models", f"fallback,{run / 'best.safetensors'}", "--data", str(data), "--split", "test",
                 "--device", "cpu", "--report", str(page), "--json", str(scores)]) == 0
    models = json.loads(scores.read_text())["models"]
    assert list(models) == ["fallback", str(run / "best.safetensors")]
    assert all(set(m["per_image"]) == {"gen1/toon6", "gen1/toon7"} for m in models.values())
    text = page.read_text()
    assert text.count("<th>difference</th>") == 2 and "gen1/toon6" in text and "gen1/toon7" in text


def test_a_stopped_and_resumed_run_ends_with_the_same_weights(run, data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "resumed"
    assert finetune(data, out, "--epochs", "2", "--max-steps", "1") == 0  # stops mid-epoch 1
    assert [(row["epoch"], row["step"]) for row in metrics(out)] == [("1", "1")]
    assert (out / "best.safetensors").is_file() and (out / "checkpoints" / "step-00000001").is_dir()

    step = loop.Run.optimizer_step

    def killed_in_step_4(self, batches):
        if self.progress["global_step"] == 3:
            raise KeyboardInterrupt  # what the CLI's SIGTERM handler raises
        return step(self, batches)

    monkeypatch.setattr(loop.Run, "optimizer_step", killed_in_step_4)
    capsys.readouterr()
    assert finetune(data, out, "--epochs", "2") == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert errors == ["error: Fine-tuning was stopped at epoch 2, step 3; the same command resumes from the state "
                      "saved at step 2."], captured
    monkeypatch.undo()
    assert finetune(data, out, "--epochs", "2") == 0

    reference = load_file(run / "checkpoints" / "step-00000004" / "model.safetensors")
    resumed = load_file(out / "checkpoints" / "step-00000004" / "model.safetensors")
    assert reference.keys() == resumed.keys()
    assert all(torch.equal(reference[key], resumed[key]) for key in reference)
    columns = ("epoch", "step", "train_loss", "val_pa", "val_mae", "lr")
    assert [[row[c] for c in columns] for row in metrics(out)] == [[row[c] for c in columns] for row in metrics(run)]


@pytest.mark.parametrize("case, expected", [
    ("no train", "The train split of"),
    ("tiny train", "has 1 image(s) but one optimizer step needs 2"),
    ("no val", "The val split of"),
    ("sizes", "has files of different sizes (im is 64x72, gt is 32x32, an is 64x72)"),
    ("foreign checkpoint", "is not a BiRefNet checkpoint"),
    ("other architecture", "is not the toonout architecture"),
    ("unreadable image", "train/gen1/toon0: "),  # raised in a data-loading worker
    ("out is a file", "cannot be created"),
])
def test_bad_input_is_one_sentence(case, expected, tmp_path, capsys):
    counts = {"no train": {"val": 1}, "tiny train": {"train": 1, "val": 1}, "no val": {"train": 2}}.get(
        case, {"train": 2, "val": 1})
    data = make_dataset(tmp_path / "data", counts)
    extra: list[str] = []
    if case == "sizes":
        save_png(data / "train" / "gen1" / "gt" / "toon0.png", np.zeros((32, 32), np.uint8))
    elif case == "foreign checkpoint":
        save_file({"encoder.weight": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
        extra = ["--init", str(tmp_path / "other.safetensors")]
    elif case == "unreadable image":
        image = data / "train" / "gen1" / "im" / "toon0.png"
        image.write_bytes(image.read_bytes()[:200])  # the header is intact, the pixels are cut off
        extra = ["--workers", "1"]
    elif case == "out is a file":
        (tmp_path / "run").write_text("not a folder")
    elif case == "other architecture":
        save_file(build_model(BiRefNetConfig.tiny()).state_dict(), str(tmp_path / "tiny.safetensors"))
        extra = ["--init", str(tmp_path / "tiny.safetensors"), "--config", "toonout"]
    args = ["finetune", "--data", str(data), "--out", str(tmp_path / "run"), *COMMON, "--epochs", "1", *extra]
    assert main(args) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], captured.err
    assert "Traceback" not in captured.err


def test_settings_that_do_not_fit_the_run_are_refused(run, data, capsys):
    assert finetune(data, run, "--epochs", "2", "--size", "96") == 1
    assert "holds a run with --size 64 (now 96)" in capsys.readouterr().err


def test_running_out_of_gpu_memory_is_one_sentence(data, tmp_path, monkeypatch, capsys):
    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(loop, "matte_loss", out_of_memory)
    assert finetune(data, tmp_path / "run", "--epochs", "1") == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: The GPU ran out of memory at --size 64 with --batch-size 2;")


def test_accelerate_launch_runs_two_processes(run, data, tmp_path):
    """Two CPU processes joined by torchrun through ``accelerate launch``: finetune, then predict on a folder."""
    env = dict(os.environ, PYTHONPATH=str(REPO), ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
              "-m", "toonmatte"]
    out = tmp_path / "two"
    result = subprocess.run([*launch, "finetune", "--data", str(data), "--out", str(out), *COMMON, "--batch-size", "1",
                             "--epochs", "1", "--max-steps", "1"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["processes"] == 2 and card["steps"] == 1 and card["training"]["effective_batch"] == 2
    state = out / "checkpoints" / "step-00000001"
    assert (state / "random_states_0.pkl").is_file() and (state / "random_states_1.pkl").is_file()

    result = subprocess.run([*launch, "predict", str(data / "train" / "gen1" / "im"), "--out", str(tmp_path / "pred"),
                             "--weights", str(run / "best.safetensors"), "--no-foreground"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    shares = sorted(line for line in result.stdout.splitlines() if line.startswith("process "))
    assert [line.split(" image(s)")[0] for line in shares] == ["process 1 of 2: 2 of 2", "process 2 of 2: 2 of 2"]
    assert sorted(p.name for p in (tmp_path / "pred").glob("toon?.png")) == [f"toon{i}.png" for i in range(4)]
