"""An image-folder tree: ROOT/<split>/<class>/<image>. Class indices follow the sorted class folder
names of the train split, so every split agrees. Declared inline in a suite:

    datasets:
      my_pets: {source: image_folder, root: /data/pets, num_classes: 37, metric: mean_per_class}
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data import SOURCES
from benchmark.data.base import DatasetSpec, ImageSplit
from benchmark.errors import MissingDataError, UserError
from benchmark.params import Interval
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


def load(split: str, root: Path | None, num_classes: int | None = None) -> ImageSplit:
    if root is None:
        raise MissingDataError(f"an image_folder dataset needs a root. Expected layout: {LAYOUT}.")
    classes = class_names(root)
    folder = root / split
    if not folder.is_dir():
        raise MissingDataError(f"image folder split {folder} is missing. Expected layout: {LAYOUT}.")
    check_class_folders(root, folder, classes, num_classes)
    split = files_by_class(folder, classes, list(range(len(classes))))
    if not len(split):
        raise UserError(f"image folder split {folder} holds no images ({sorted(IMAGE_SUFFIXES)}).")
    return split


def files_by_class(directory: Path, folders: list[str], labels: list[int]) -> ImageSplit:
    """The images of each class folder under `directory`, labelled with that folder's label."""
    files, targets = [], []
    for name, label in zip(folders, labels):
        found = images_in(directory / name)
        files += found
        targets += [label] * len(found)
    return ImageSplit(files, np.asarray(targets, dtype=np.int64))


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def check_class_folders(root: Path, folder: Path, classes: list[str], num_classes: int | None) -> None:
    """The class folders against the declared classes: a count that differs, a split's folder that train
    lacks, or a class whose images sit one level too deep would each give a wrong number silently."""
    if num_classes is not None and len(classes) != num_classes:
        raise UserError(f"image folder {root / 'train'} has {len(classes)} class folder(s) ({', '.join(classes[:5])}"
                        f"{', ...' if len(classes) > 5 else ''}) but the suite declares num_classes: {num_classes}; "
                        f"fix num_classes or the folders ({LAYOUT})")
    if len(classes) < 2:
        raise UserError(f"image folder {root / 'train'} has {len(classes)} class folder(s); a classification "
                        f"dataset needs at least two ({LAYOUT})")
    unknown = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in classes)
    if unknown:
        raise UserError(f"{folder} has class folder(s) {', '.join(unknown[:5])} that {root / 'train'} lacks; every "
                        f"split must use train's class names")
    for name in classes:
        if images_in(folder / name):  # the usual case: no walk below the class folder
            continue
        deeper = [p for p in (folder / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
        if deeper:
            raise UserError(f"{folder / name} holds no images itself but {len(deeper)} in sub-folders (e.g. "
                            f"{deeper[0].relative_to(folder)}); images must sit directly in {LAYOUT}")


def declared_classes(name: str, value: Any) -> int:
    try:
        return Interval(int, 2).normalise(value)
    except ValueError:
        raise UserError(f"dataset {name!r}: num_classes must be an integer of at least 2, got {value!r}") from None


@SOURCES.register("image_folder")
def image_folder(name: str, num_classes: int, metric: Metric = Metric.TOP1, splits: tuple[str, ...] = ("train", "test"),
                 **fields) -> DatasetSpec:
    num_classes = declared_classes(name, num_classes)
    return DatasetSpec(name=name, num_classes=num_classes, load=partial(load, num_classes=num_classes), metric=metric,
                       splits=tuple(splits),
                       needs_root=True, layout=LAYOUT, description="image folder tree", **fields)
