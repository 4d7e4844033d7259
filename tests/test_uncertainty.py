"""The uncertainty score: deterministic, and it orders mattes by how much a person would fix."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from benchmarks.uncertainty import build_dataset
from toonmatte.cli import main
from toonmatte.evaluation.uncertainty import FRAGMENT_WEIGHT, ranking_quality, uncertainty


def disc(size: int = 128, rim: int = 0, seed: int = 0) -> np.ndarray:
    """An anti-aliased disc; with ``rim``, a noisy half-transparent band of that width around it."""
    big = np.zeros((size * 4, size * 4), np.uint8)
    cv2.circle(big, (size * 2, size * 2), size, 255, -1)
    alpha = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
    if rim:
        kernel = np.ones((2 * rim + 1, 2 * rim + 1), np.uint8)
        band = (cv2.dilate(alpha, kernel) > 0) & (cv2.erode(alpha, kernel) < 255)
        alpha = np.where(band, np.random.default_rng(seed).integers(60, 200, alpha.shape), alpha).astype(np.uint8)
    return alpha


def test_a_clean_disc_is_surer_than_one_with_a_noisy_soft_rim() -> None:
    clean, noisy = uncertainty(disc()), uncertainty(disc(rim=4))
    assert clean.score < 0.03 and clean.badge == "probably fine"
    assert noisy.soft > 5 * clean.soft and noisy.score > clean.score and noisy.badge == "likely wrong"
    assert uncertainty(disc(rim=4)) == noisy  # deterministic


def test_islands_and_holes_raise_fragments_and_an_empty_matte_needs_a_look() -> None:
    alpha = disc()
    islands = alpha.copy()
    islands[5:9, 5:9] = 255
    islands[120:124, 3:7] = 255
    holed = alpha.copy()
    holed[62:66, 62:66] = 0  # a pinhole
    gap = alpha.copy()
    gap[40:88, 60:68] = 0  # a slot through the middle: a gap in the pose, not a mistake
    dusty = alpha.copy()
    dusty[2, 2] = 255  # one stray pixel: dust
    assert uncertainty(alpha).fragments == uncertainty(gap).fragments == uncertainty(dusty).fragments == 0
    assert uncertainty(islands).fragments >= 2 * FRAGMENT_WEIGHT > uncertainty(holed).fragments >= FRAGMENT_WEIGHT
    empty = uncertainty(np.zeros((32, 32), np.uint8))
    assert empty.soft == empty.fragments == 1.0 and empty.badge == "likely wrong"
    with pytest.raises(ValueError):
        uncertainty(alpha.astype(np.float32))


def test_flip_disagreement_counts_when_a_second_pass_ran() -> None:
    alpha = disc()
    assert uncertainty(alpha, flipped=alpha[:, ::-1]).flip == 0
    lopsided = alpha.copy()
    lopsided[:, :40] = 0
    assert uncertainty(alpha, flipped=lopsided).flip > 0.05  # a third of the disc missing on one side


def test_ranking_quality() -> None:
    changes = np.arange(10.0)
    assert ranking_quality(changes, changes) == pytest.approx((1.0, 1.0))
    assert ranking_quality(-changes, changes) == pytest.approx((-1.0, 0.0))


def test_evaluate_uncertainty_ranks_a_dataset_of_corrections(tmp_path, capsys) -> None:
    build_dataset(tmp_path / "data", 24, size=96)
    assert main(["evaluate", "--uncertainty", "--data", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "24 corrected items" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert set(rows) == {"soft", "fragments", "score"} and float(rows["score"][0]) > 0
    assert main(["evaluate", "--uncertainty", "--data", str(tmp_path / "empty")]) == 1
    assert "at least 3" in capsys.readouterr().err
