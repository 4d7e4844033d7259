import argparse
import re

import pytest
import torch
from PIL import Image

from conftest import draw_toon
from toonmatte.cli import main
from toonmatte.commands.bench import DeformableTime, agreement, batch_sizes
from toonmatte.model.birefnet import BiRefNetConfig, build_model


def test_bench_tiny_reports_forward_and_deformable_share(capsys):
    assert main(["bench", "--tiny", "--size", "64", "--repeats", "1", "--precision", "fp32",
                 "--skip-memory", "--skip-foreground"]) == 0
    out = capsys.readouterr().out
    forward = re.search(r"fp32 forward \(tiny test graph, random weights, 1x3x64x64\): (\d+) ms", out)
    share = re.search(r"of which deformable convolutions .*: (\d+) ms \((\d+)%\)", out)
    assert forward and share, out
    assert int(share.group(1)) <= int(forward.group(1)) + 1
    assert 0 <= int(share.group(2)) <= 100


def test_deformable_time_counts_only_while_attached():
    net = build_model(BiRefNetConfig.tiny())
    x = torch.randn(1, 3, 64, 64)
    timer = DeformableTime(net, lambda: None)
    with torch.no_grad():
        net(x)
        assert timer.seconds > 0
        timer.close()
        seen = timer.seconds
        net(x)
    assert timer.seconds == seen


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


def test_throughput_sweep_reports_each_batch_size(capsys):
    assert main(["bench", "--tiny", "--size", "64", "--repeats", "1", "--precision", "fp32",
                 "--skip-memory", "--skip-foreground", "--batches", "1,3"]) == 0
    out = capsys.readouterr().out
    rates = re.findall(r"batch (\d+): eager [\d.]+ ms = ([\d.]+) images/s", out)
    assert [batch for batch, _ in rates] == ["1", "3"], out
    assert all(float(rate) > 0 for _, rate in rates)


def test_batch_sizes_are_parsed_or_refused_in_one_sentence():
    assert batch_sizes("1,4, 8") == [1, 4, 8]
    for bad in ("", "0,2", "two"):
        with pytest.raises(argparse.ArgumentTypeError, match="comma-separated"):
            batch_sizes(bad)


def test_batch_outputs_bench_times_the_stages_and_both_pipelines(tmp_path, capsys):
    for seed in range(3):
        Image.fromarray(draw_toon(120, 96, seed=seed)[0]).save(tmp_path / f"toon{seed}.png")
    assert main(["bench", "--skip-model", "--skip-foreground", "--device", "cpu", "--images", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    stages = re.search(r"batch outputs, 3 images from .*: decode \d+ ms, cut-out \d+ ms, PNG encoding .* \d+ ms "
                       r"\(Pillow's defaults: \d+ ms; files ([\d.]+) x Pillow's size\)", out)
    rates = re.search(r"([\d.]+) images/s with the stages overlapped .*, ([\d.]+) images/s one after another", out)
    assert stages and rates, out
    assert 0.5 < float(stages.group(1)) < 2  # both encoders compress the same images
    assert float(rates.group(1)) > 0 and float(rates.group(2)) > 0
    # outputs went elsewhere
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toon0.png", "toon1.png", "toon2.png"]
