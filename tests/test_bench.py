"""``python -m toonmatte bench``: what it measures, read from its JSON output and its pieces with a fake clock."""
import argparse
import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import draw_toon
from toonmatte.cli import main
from toonmatte.commands import bench
from toonmatte.commands.bench import DeformableTime, agreement, batch_sizes, reference_check
from toonmatte.model.birefnet import BiRefNetConfig, DeformableConv2d, build_model
from toonmatte.model.golden_fill import golden_input
from toonmatte.model.inference import optimize_for_inference

TINY = ["bench", "--tiny", "--device", "cpu", "--size", "64", "--repeats", "1", "--skip-memory", "--skip-foreground"]


def bench_json(tmp_path, *extra: str) -> dict:
    out = tmp_path / "bench.json"
    assert main([*TINY, *extra, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_bench_writes_each_forward_and_derives_the_fast_path_from_them(tmp_path, capsys):
    record = bench_json(tmp_path, "--precision", "bf16")
    assert (record["graph"], record["size"], record["batch"], record["device"]) == ("tiny", 64, 1, "cpu")
    assert list(record["forward"]) == ["fp32", "bf16"]
    for row in record["forward"].values():
        assert 0 <= row["deformable_seconds"] <= row["seconds"]
        assert row["deformable_share"] == pytest.approx(row["deformable_seconds"] / row["seconds"])
        assert len(row["gemm_flop_per_second"]) == 2  # one before the timed forward, one after
    fast = record["fast_path"]
    assert fast["precision"] == "bf16"
    assert fast["speedup"] == pytest.approx(record["forward"]["fp32"]["seconds"] / record["forward"]["bf16"]["seconds"])
    assert 0 <= fast["iou"] <= 1 and fast["max_delta"] >= 0
    assert f"bf16 fast path: {fast['speedup']:.2f}x the fp32 speed" in capsys.readouterr().out
    assert "reference_max_delta_logit" not in record  # no --golden: nothing is compared, nothing outside is read


def test_deformable_time_counts_each_deformable_call_while_attached(monkeypatch):
    ticks = itertools.count()
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    model = build_model(BiRefNetConfig.tiny())
    calls = sum(isinstance(m, DeformableConv2d) for m in model.modules())
    net = optimize_for_inference(model)  # the fused convolutions the bench times
    x = torch.randn(1, 3, 64, 64)
    timer = DeformableTime(net, lambda: None)
    with torch.no_grad():
        net(x)
        assert calls > 0 and timer.seconds == calls  # one tick between entering and leaving each one
        timer.close()
        net(x)
    assert timer.seconds == calls


def test_agreement_counts_flips_at_the_threshold():
    logits = torch.full((1, 1, 2, 2), -5.0)  # alpha 2/255
    logits[..., 0, :] = 5.0  # two clear foreground pixels
    assert agreement(logits, logits)["iou"] == 1.0
    assert agreement(logits, logits)["mean_delta"] == 0.0
    nudged = logits.clone()
    nudged[..., 1, 0] = 0.05  # sigmoid 0.5125 -> 131/255: a third foreground pixel
    numbers = agreement(logits, nudged)
    assert numbers["iou"] == 2 / 3
    assert numbers["max_delta"] == 131 - 2


def test_reference_check_compares_with_the_logits_in_the_golden_folder(tmp_path):
    torch.manual_seed(0)
    net = optimize_for_inference(build_model(BiRefNetConfig.tiny()))
    with torch.no_grad():
        logits = {f"logits_{h}x{w}": net(golden_input(h, w)).numpy() for h, w in ((256, 256), (384, 256))}
    logits["logits_384x256"] = logits["logits_384x256"] + 0.25
    np.savez(tmp_path / "forward.npz", **logits)
    errors = reference_check(net, tmp_path, torch.device("cpu"))
    assert errors["256x256"] < 1e-5 and errors["384x256"] == pytest.approx(0.25, abs=1e-5)


def test_a_golden_folder_without_the_reference_is_refused_in_one_sentence(tmp_path, capsys):
    assert main(["bench", "--skip-model", "--skip-foreground", "--golden", str(tmp_path)]) == 1
    error = capsys.readouterr().err.strip()
    assert error == (f"error: {tmp_path / 'forward.npz'} does not exist; --golden takes the folder holding the "
                     "reference implementation's forward.npz.")


def test_throughput_sweep_has_a_row_per_batch_size(tmp_path):
    record = bench_json(tmp_path, "--precision", "fp32", "--batches", "1,3")
    rows = record["throughput"]
    assert [(row["batch"], row["variant"]) for row in rows] == [(1, "eager"), (3, "eager")]
    for row in rows:
        assert row["images_per_second"] == pytest.approx(row["batch"] / row["seconds"])
        assert row["max_delta_logit"] is None  # eager is the reference the graphed variants are compared with


def test_batch_sizes_are_parsed_or_refused_in_one_sentence():
    assert batch_sizes("1,4, 8") == [1, 4, 8]
    for bad in ("", "0,2", "two"):
        with pytest.raises(argparse.ArgumentTypeError, match="comma-separated"):
            batch_sizes(bad)


def test_batch_outputs_bench_times_the_stages_and_both_pipelines(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for seed in range(3):
        Image.fromarray(draw_toon(120, 96, seed=seed)[0]).save(images / f"toon{seed}.png")
    out = tmp_path / "bench.json"
    assert main(["bench", "--skip-model", "--skip-foreground", "--device", "cpu", "--images", str(images),
                 "--json", str(out)]) == 0
    outputs = json.loads(out.read_text())["outputs"]
    assert outputs["images"] == 3
    assert set(outputs["median_seconds"]) == {"decode", "cut-out", "PNG encoding", "Pillow"}
    assert outputs["size_vs_pillow"] == pytest.approx(outputs["png_bytes"] / outputs["pillow_bytes"])
    assert 0.5 < outputs["size_vs_pillow"] < 2  # both encoders compress the same images
    assert outputs["overlapped_images_per_second"] == pytest.approx(3 / outputs["overlapped_seconds"])
    assert outputs["serial_images_per_second"] == pytest.approx(3 / outputs["serial_seconds"])
    assert sorted(p.name for p in images.iterdir()) == ["toon0.png", "toon1.png", "toon2.png"]  # outputs went elsewhere


def test_a_json_path_in_a_missing_folder_is_refused_before_the_timings(tmp_path, capsys):
    assert main(["bench", "--skip-model", "--skip-foreground", "--json", str(tmp_path / "no" / "b.json")]) == 1
    assert "does not exist; create it or choose another path." in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc")
def test_the_memory_probe_reports_its_own_peak_not_its_parents():
    """Linux keeps ``ru_maxrss`` across exec, so a probe started by a process holding gigabytes (as
    ``bench --backend onnx`` does after an export) would report the parent's size."""
    held = bytearray(1 << 30)
    held[::4096] = b"\x01" * len(held[::4096])  # resident, not only reserved
    args = argparse.Namespace(size=64, batch=1, tiny=True)
    probe = bench.peak_memory(args, torch.device("cpu"), "fp32")
    assert probe is not None and probe["peak"] >= probe["before"] > 0
    assert probe["peak"] < len(held)  # the tiny graph's process stays far below the gibibyte its parent holds
    del held
