"""ToonOut's loss mix and the run folder's records."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from toonmatte.training.loop import lr_milestones
from toonmatte.training.loss import gradient_target, iou_loss, matte_loss, ssim_loss
from toonmatte.training.records import METRIC_COLUMNS, write_curves, write_metrics


def test_a_right_matte_costs_less_than_a_wrong_one():
    torch.manual_seed(0)
    gt = torch.zeros(2, 1, 32, 32)
    gt[:, :, 8:24, 8:24] = 1.0
    gt[:, :, 8:24, 24] = 0.5  # a soft edge
    image = torch.randn(2, 3, 32, 32)
    right = torch.logit(gt.clamp(0.01, 0.99))
    heads = [(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))] * 3
    assert matte_loss(right, heads, image, gt)[0] < matte_loss(-right, heads, image, gt)[0]
    hard = (gt > 0.75).float()
    assert iou_loss(hard, hard) == pytest.approx(0.0, abs=1e-6) and iou_loss(1 - hard, hard) == pytest.approx(1.0)
    assert ssim_loss(gt, gt) == pytest.approx(0.0, abs=1e-6) and ssim_loss(1 - gt, gt) > 0.5


def test_the_gradient_target_is_edges_inside_the_foreground():
    image = torch.zeros(1, 3, 16, 16)
    image[..., 4:12, 4:12] = 1.0
    gt = torch.zeros(1, 1, 16, 16)
    gt[..., :, :8] = 1.0
    target = gradient_target(image, gt)
    assert target.max() == 1.0 and target.min() == 0.0
    assert target[..., :, 8:].abs().sum() == 0 and target[..., 4, 4:8].sum() > 0


def test_the_rate_is_halved_at_toonouts_epochs():
    assert lr_milestones(100) == [20, 40, 60, 80]
    assert lr_milestones(10) == [2, 4, 6, 8] and lr_milestones(1) == []


def test_metrics_and_curves_are_written(tmp_path):
    rows = [{"epoch": 1, "step": 3, "train_loss": None, "val_pa": 0.5, "val_mae": 0.1},
            {"epoch": 2, "step": 6, "train_loss": 2.0, "val_pa": 0.7, "val_mae": float("nan")}]
    write_metrics(tmp_path / "metrics.csv", rows)
    with open(tmp_path / "metrics.csv", newline="") as handle:
        read = list(csv.DictReader(handle))
    assert tuple(read[0]) == METRIC_COLUMNS and [row["val_pa"] for row in read] == ["0.5", "0.7"]
    write_curves(tmp_path / "curves.png", rows)
    with Image.open(tmp_path / "curves.png") as image:
        assert image.mode == "RGB" and np.asarray(image).std() > 0
    assert not list(tmp_path.glob(".*"))  # no temporary left
