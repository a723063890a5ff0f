"""A 3-class texture task (a small DTD stand-in) cut from scikit-image's real 512x512 grey textures
brick, grass and gravel: non-overlapping 32x32 tiles on a grid whose offset is drawn from a seed,
up to 256 tiles per texture (fewer when the offset drops an edge row or column). Saved 70/30 split."""

from __future__ import annotations

import numpy as np

from benchmark.data import register_dataset
from benchmark.data.base import DatasetSpec, ImageSplit
from benchmark.data.splits import saved_split_loader

TEXTURES = ("brick", "grass", "gravel")
TILE = 32
SEED = 0
TEST_FRACTION = 0.3


def tiles(image: np.ndarray, offset: tuple[int, int]) -> list[np.ndarray]:
    top, left = offset
    rows = (image.shape[0] - top) // TILE
    cols = (image.shape[1] - left) // TILE
    return [image[top + r * TILE: top + (r + 1) * TILE, left + c * TILE: left + (c + 1) * TILE]
            for r in range(rows) for c in range(cols)]


def all_images() -> ImageSplit:
    import skimage.data

    rng = np.random.default_rng(SEED)
    images, labels = [], []
    for label, name in enumerate(TEXTURES):
        offset = tuple(int(v) for v in rng.integers(0, TILE, size=2))
        patches = tiles(getattr(skimage.data, name)(), offset)
        images += patches
        labels += [label] * len(patches)
    return ImageSplit(np.stack(images).astype(np.uint8), np.asarray(labels, dtype=np.int64))


SPEC = register_dataset(DatasetSpec(
    name="textures", num_classes=3, load=saved_split_loader("textures", all_images, TEST_FRACTION),
    class_names=TEXTURES,
    description="32x32 tiles of skimage brick/grass/gravel (seeded grid offset), saved stratified 70/30 split"))
