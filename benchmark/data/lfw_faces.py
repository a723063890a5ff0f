"""Faces vs non-faces from scikit-image's `lfw_subset()`: 200 grey 25x25 crops, the first 100 faces
(Labeled Faces in the Wild), the next 100 non-face patches. Saved stratified 70/30 train/test split."""

from __future__ import annotations

import numpy as np

from benchmark.data import register_dataset
from benchmark.data.base import DatasetSpec, ImageSplit
from benchmark.data.splits import saved_split_loader

TEST_FRACTION = 0.3


def all_images() -> ImageSplit:
    from skimage.data import lfw_subset

    crops = lfw_subset()
    images = np.clip(np.rint(crops * 255.0), 0, 255).astype(np.uint8)
    labels = np.repeat(np.array([0, 1], dtype=np.int64), len(images) // 2)
    return ImageSplit(images, labels)


SPEC = register_dataset(DatasetSpec(
    name="lfw_faces", num_classes=2, load=saved_split_loader("lfw_faces", all_images, TEST_FRACTION),
    class_names=("face", "non-face"),
    description="skimage lfw_subset: 100 faces vs 100 non-faces, 25x25, saved stratified 70/30 split"))
