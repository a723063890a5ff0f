"""UCI optical digits as shipped by scikit-learn: 1,797 8x8 images (0-16 grey levels), 10 classes.

No official split: a seeded, stratified 80/20 train/test split saved in `splits/digits.json`.
"""

from __future__ import annotations

import numpy as np

from benchmark.data import register_dataset
from benchmark.data.base import DatasetSpec, ImageSplit
from benchmark.data.splits import saved_split_loader

TEST_FRACTION = 0.2


def all_images() -> ImageSplit:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return ImageSplit(images, digits.target.astype(np.int64))


SPEC = register_dataset(DatasetSpec(
    name="digits", num_classes=10, load=saved_split_loader("digits", all_images, TEST_FRACTION),
    class_names=tuple(str(d) for d in range(10)),
    description="sklearn load_digits (8x8), saved stratified 80/20 split"))
