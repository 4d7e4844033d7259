"""Training data: the per-epoch batches of each process, sample seeding, augmentation and re-compositing."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import draw_toon, save_png
from toonmatte.dataset import list_items
from toonmatte.errors import TrainingError
from toonmatte.training.augment import Augmentation, augment, composite, enhance_colour, new_background, rotate
from toonmatte.training.data import EpochBatches, TrainingSet, check_sizes


def test_epoch_batches_split_whole_steps_between_processes():
    shards = [EpochBatches(11, batch_size=2, processes=2, rank=rank, accumulation=2, seed=7) for rank in (0, 1)]
    assert shards[0].steps_per_epoch == 1 and len(shards[0]) == 2  # 8 of 11 items fill one step; 3 are left out
    seen = [key for shard in shards for batch in shard for key in batch]
    assert len(seen) == 8 and len(set(seen)) == 8 and {epoch for epoch, _ in seen} == {0}
    first = [list(shard) for shard in shards]
    for shard in shards:
        shard.epoch = 1
    assert [list(shard) for shard in shards] != first  # a new order each epoch
    for shard in shards:
        shard.epoch = 0
    assert [list(shard) for shard in shards] == first  # and the same order for the same epoch


def test_resuming_mid_epoch_skips_the_steps_done():
    full = EpochBatches(12, batch_size=1, processes=1, rank=0, accumulation=2, seed=0)
    rest = EpochBatches(12, batch_size=1, processes=1, rank=0, accumulation=2, seed=0)
    rest.start_step = 4
    assert list(rest) == list(full)[8:] and len(rest) == 4


def make_items(root, count=2, size=(40, 32)):
    for seed in range(count):
        rgb, alpha = draw_toon(*size, seed=seed)
        for kind, array in (("im", rgb), ("gt", alpha), ("an", np.dstack([rgb, alpha]))):
            save_png(root / "train" / "g" / kind / f"t{seed}.png", array)
    return list_items(root, ["train"])


def test_samples_depend_on_seed_epoch_and_index_only(tmp_path):
    items = make_items(tmp_path)
    dataset = TrainingSet(items, 32, Augmentation(recomposite=0.5), seed=3)
    image, alpha = dataset[(2, 1)]
    assert image.shape == (3, 32, 32) and alpha.shape == (1, 32, 32) and alpha.dtype == torch.float32
    again = TrainingSet(items, 32, Augmentation(recomposite=0.5), seed=3)[(2, 1)]
    assert torch.equal(image, again[0]) and torch.equal(alpha, again[1])
    soft = ((alpha > 0.05) & (alpha < 0.95)).sum()
    assert soft > 0  # the ground truth stays soft
    plain = TrainingSet(items, 32, None, seed=3)
    assert not torch.equal(plain[(0, 1)][0], plain[(0, 0)][0])


def test_geometric_augmentation_moves_image_and_alpha_together():
    rgb, gt = draw_toon(48, 40, seed=1)
    alpha = gt.astype(np.float32) / 255
    turned_rgb, turned_alpha = rotate(rgb, alpha, 10.0)
    opaque = turned_alpha > 0.99
    background = turned_alpha < 0.01
    assert opaque.any() and background.any()
    assert np.abs(turned_rgb[background].astype(int) - 128).max() <= 2  # background stays background grey
    flipped, flipped_alpha = augment(rgb, alpha, np.random.default_rng(0), Augmentation(basic=True))
    assert flipped.shape == rgb.shape and flipped_alpha.dtype == np.float32


def test_colour_enhancement_is_identity_at_factor_one():
    rgb = draw_toon(24, 24)[0]
    np.testing.assert_array_equal(enhance_colour(rgb, 1.0, 1.0, 1.0), rgb)


@pytest.mark.parametrize("seed", range(6))
def test_recompositing_keeps_the_character_and_replaces_the_background(seed):
    rgb, gt = draw_toon(48, 40, seed=seed)
    alpha = gt.astype(np.float32) / 255
    background = new_background(rgb, alpha, np.random.default_rng(seed))
    assert background.shape == rgb.shape and background.dtype == np.uint8
    mixed = composite(rgb, alpha, background)
    np.testing.assert_array_equal(mixed[gt == 255], rgb[gt == 255])
    np.testing.assert_array_equal(mixed[gt == 0], background[gt == 0])


def test_triples_of_different_sizes_are_named(tmp_path):
    items = make_items(tmp_path)
    save_png(items[1].gt, np.zeros((10, 12), np.uint8))
    with pytest.raises(TrainingError, match=r"train/g/t1 has files of different sizes \(im is 32x40, gt is 12x10"):
        check_sizes(items)
