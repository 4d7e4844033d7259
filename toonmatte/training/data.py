"""The train and val splits as tensors: items checked before training starts, augmentation seeded per sample.

The train order is a function of (seed, epoch) alone and every sample's augmentation of
(seed, epoch, index) alone, so a resumed run sees exactly the batches and augmentations the
uninterrupted run would have, whatever the number of data-loading workers.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from toonmatte.dataset import Item, list_items
from toonmatte.errors import BadImageError, TrainingError
from toonmatte.imaging.imageio import GRAY, load_image, load_mask
from toonmatte.pipeline import preprocess
from toonmatte.training.augment import Augmentation, augment

T = TypeVar("T")

SampleKey = tuple[int, int]  # (epoch, index into the items)


def split_items(root: Path, split: str) -> tuple[list[Item], list[Item]]:
    """(items of ``split`` with an image and a ground truth, items lacking one of them)."""
    items = list_items(root, [split])
    usable = [item for item in items if item.im is not None and item.gt is not None]
    return usable, [item for item in items if item.im is None or item.gt is None]


def check_sizes(items: Sequence[Item]) -> None:
    """Raise TrainingError naming the first item whose im, gt and an are not all one size (headers only)."""
    for item in items:
        sizes = {}
        for kind in ("im", "gt", "an"):
            path = item.path(kind)
            if path is None:
                continue
            try:
                with Image.open(path) as image:
                    sizes[kind] = image.size
            except OSError as error:
                raise TrainingError(f"{item.name}: the {kind} file cannot be read ({error}); fix or remove the "
                                    f"triple.") from None
        if len(set(sizes.values())) > 1:
            shown = ", ".join(f"{kind} is {w}x{h}" for kind, (w, h) in sizes.items())
            raise TrainingError(f"{item.name} has files of different sizes ({shown}); fix or remove the triple.")


def data_digest(items: Sequence[Item]) -> str:
    """SHA-256 over every item's name and the bytes of its im, gt and an files: which data a run saw."""
    digest = hashlib.sha256()
    for item in sorted(items, key=lambda item: item.name):
        digest.update(item.name.encode() + b"\0")
        for kind in ("im", "gt", "an"):
            path = item.path(kind)
            digest.update(kind.encode() + (b"\1" if path is not None else b"\0"))
            if path is not None:
                with open(path, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
    return digest.hexdigest()


def read_pair(item: Item) -> tuple[np.ndarray, np.ndarray]:
    """(rgb uint8 HxWx3 with transparency on grey, as at inference; gt uint8 HxW) of an item that has both
    (the training and validation sets hold ``split_items``' usable items)."""
    assert item.im is not None and item.gt is not None, f"{item.name} lacks an image or a ground truth"
    try:
        return load_image(item.im, background=GRAY).rgb, load_mask(item.gt)
    except BadImageError as error:
        raise TrainingError(f"{item.name}: {error}") from None


def read_foreground(item: Item, size: int) -> np.ndarray | None:
    """The ``an`` cut-out's colours resized to ``size`` x ``size``, or None when the item has none."""
    if item.an is None:
        return None
    with Image.open(item.an) as image:
        rgb = np.asarray(image.convert("RGBA"))[..., :3]
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR)


def to_tensors(rgb: np.ndarray, alpha: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalized 3 x H x W image, 1 x H x W float alpha in [0, 1]) from arrays already at the training size."""
    return preprocess(np.ascontiguousarray(rgb), rgb.shape[:2]), torch.from_numpy(np.ascontiguousarray(alpha))[None]


class TrainingSet(Dataset):
    """Training samples at ``size`` x ``size`` (stretched, as ToonOut trained), keyed by (epoch, index)."""

    def __init__(self, items: Sequence[Item], size: int, augmentation: Augmentation | None, seed: int) -> None:
        self.items, self.size, self.augmentation, self.seed = list(items), size, augmentation, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key
        item = self.items[index]
        rgb, gt = read_pair(item)
        rgb = cv2.resize(rgb, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        alpha = cv2.resize(gt, (self.size, self.size), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        if self.augmentation is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            rgb, alpha = augment(rgb, alpha, rng, self.augmentation, lambda: read_foreground(item, self.size))
        return to_tensors(rgb, alpha)


class ValidationSet(Dataset):
    """(image at ``size`` x ``size``, ground truth uint8 at its own size) per item, unaugmented."""

    def __init__(self, items: Sequence[Item], size: int) -> None:
        self.items, self.size = list(items), size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, np.ndarray]:
        rgb, gt = read_pair(self.items[index])
        return preprocess(rgb, (self.size, self.size)), gt


def single(batch: list[T]) -> T:
    """Collate for batches of one: the sample itself."""
    return batch[0]


class EpochBatches(Sampler[list[SampleKey]]):
    """One process's micro-batches of an epoch, from optimizer step ``start_step`` on.

    The epoch's order is a permutation drawn from (seed, epoch); each optimizer step takes the
    next ``batch_size x processes x accumulation`` items of it (the remainder of the epoch is
    left out, so every step is whole), and process ``rank`` gets micro-batches rank, rank +
    processes, ... of the step. Set ``epoch`` and ``start_step`` before iterating.
    """

    def __init__(self, count: int, batch_size: int, processes: int, rank: int, accumulation: int, seed: int) -> None:
        self.count, self.batch_size, self.processes, self.rank = count, batch_size, processes, rank
        self.accumulation, self.seed = accumulation, seed
        self.epoch, self.start_step = 0, 0

    @property
    def per_step(self) -> int:
        return self.batch_size * self.processes * self.accumulation

    @property
    def steps_per_epoch(self) -> int:
        return self.count // self.per_step

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.accumulation

    def __iter__(self) -> Iterator[list[SampleKey]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.count)
        for step in range(self.start_step, self.steps_per_epoch):
            chunk = order[step * self.per_step:(step + 1) * self.per_step]
            for micro in range(self.accumulation):
                first = (micro * self.processes + self.rank) * self.batch_size
                yield [(self.epoch, int(index)) for index in chunk[first:first + self.batch_size]]
