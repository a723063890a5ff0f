"""An image-folder tree: ROOT/<split>/<class>/<image>. Class indices follow the sorted class folder
names of the train split, so every split agrees. Declared inline in a suite:

    datasets:
      my_pets: {source: image_folder, root: /data/pets, num_classes: 37, metric: mean_per_class}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.data import SOURCES
from benchmark.data.base import DatasetSpec, ImageSplit
from benchmark.errors import MissingDataError, UserError
from benchmark.vocab import Metric

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
LAYOUT = "ROOT/<split>/<class name>/<image file> (e.g. ROOT/train/cat/001.jpg)"


def class_names(root: Path) -> list[str]:
    train = root / "train"
    if not train.is_dir():
        raise MissingDataError(f"image folder {root} has no train/ directory. Expected layout: {LAYOUT}.")
    return sorted(p.name for p in train.iterdir() if p.is_dir())


def imagefolder_split(directory: Path, what: str) -> ImageSplit:
    """torchvision's ImageFolder over `directory`: classes are the sorted sub-folders, files in its walk
    order (what the reference's ImageFolder-based loaders index into)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    if not directory.is_dir():
        raise MissingDataError(f"{directory} is missing; expected {what}")
    try:
        _, class_to_index = find_classes(str(directory))
        samples = make_dataset(str(directory), class_to_index, extensions=IMG_EXTENSIONS)
    except FileNotFoundError as err:
        raise MissingDataError(f"{directory}: {err}; expected {what}") from None
    return ImageSplit([Path(path) for path, _ in samples], np.asarray([label for _, label in samples], dtype=np.int64))


def load(split: str, root: Path | None) -> ImageSplit:
    if root is None:
        raise MissingDataError(f"an image_folder dataset needs a root. Expected layout: {LAYOUT}.")
    classes = class_names(root)
    folder = root / split
    if not folder.is_dir():
        raise MissingDataError(f"image folder split {folder} is missing. Expected layout: {LAYOUT}.")
    files, labels = [], []
    for index, name in enumerate(classes):
        found = sorted(p for p in (folder / name).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        labels += [index] * len(found)
    if not files:
        raise UserError(f"image folder split {folder} holds no images ({sorted(IMAGE_SUFFIXES)}).")
    return ImageSplit(files, np.asarray(labels, dtype=np.int64))


@SOURCES.register("image_folder")
def image_folder(name: str, num_classes: int, metric: Metric = Metric.TOP1, splits: tuple[str, ...] = ("train", "test"),
                 **fields) -> DatasetSpec:
    return DatasetSpec(name=name, num_classes=num_classes, load=load, metric=metric, splits=tuple(splits),
                       needs_root=True, layout=LAYOUT, description="image folder tree", **fields)
