"""A dense task from real Fashion-MNIST items: 56x56 grey mosaics of a 2x2 grid, each cell holding an
item with probability 3/4. The mask labels a pixel with its item's class + 1 where the item's pixel
value exceeds 40 (of 255), and 0 (background) elsewhere. These are DERIVED masks (thresholded item
silhouettes), not human annotation: good for ranking dense features offline, not a benchmark of its
own. Train mosaics use Fashion-MNIST train items, test mosaics its test items (seeded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.data import register_dataset
from benchmark.data.base import DatasetSpec, ImageSplit
from benchmark.data.fashion_mnist import CLASSES
from benchmark.data.fashion_mnist import load as load_fashion
from benchmark.vocab import Metric, TaskType

SIZES = {"train": 1000, "test": 500}  # version 2: 1000 train mosaics (the first 1000 of version 1's 2000)
SEEDS = {"train": 0, "test": 1}
THRESHOLD = 40
CELL = 28


def mosaics(items: ImageSplit, count: int, seed: int) -> ImageSplit:
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 2 * CELL, 2 * CELL), np.uint8)
    masks = np.zeros((count, 2 * CELL, 2 * CELL), np.uint8)
    for i in range(count):
        for r in range(2):
            for c in range(2):
                if rng.random() < 0.25:
                    continue
                j = int(rng.integers(len(items)))
                item = items.images[j]
                cell = (slice(r * CELL, (r + 1) * CELL), slice(c * CELL, (c + 1) * CELL))
                images[i][cell] = item
                masks[i][cell] = np.where(item > THRESHOLD, items.labels[j] + 1, 0)
    return ImageSplit(images, masks)


def load(split: str, root: Path | None) -> ImageSplit:
    return mosaics(load_fashion(split, root), SIZES[split], SEEDS[split])


SPEC = register_dataset(DatasetSpec(
    name="fmnist_mosaic", version=2, num_classes=11, load=load, metric=Metric.MIOU, task=TaskType.SEGMENTATION,
    class_names=("background", *CLASSES),
    description="2x2 mosaics of Fashion-MNIST items with derived (thresholded) masks, 1000/500"))
