"""Datasets stored in torchvision's own on-disk layouts under a user's root (never downloaded).

Each entry is one row of `LAYOUTS`: the torchvision class, how it names splits, and the spec fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data import register_dataset
from benchmark.data.base import DatasetSpec, ImageSplit
from benchmark.errors import MissingDataError
from benchmark.vocab import Metric

# name: (torchvision class, split argument style, num_classes, metric, splits, layout)
LAYOUTS: dict[str, tuple[str, str, int, str, tuple[str, ...], str]] = {
    "cifar10": ("CIFAR10", "train_flag", 10, Metric.TOP1, ("train", "test"),
                "ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}"),
    "cifar100": ("CIFAR100", "train_flag", 100, Metric.TOP1, ("train", "test"),
                 "ROOT/cifar-100-python/{train,test,meta}"),
    "mnist": ("MNIST", "train_flag", 10, Metric.TOP1, ("train", "test"), "ROOT/MNIST/raw/*-ubyte[.gz]"),
    "svhn": ("SVHN", "split_arg", 10, Metric.TOP1, ("train", "test"), "ROOT/{train,test}_32x32.mat"),
    "stl10": ("STL10", "split_arg", 10, Metric.TOP1, ("train", "test"), "ROOT/stl10_binary/*.bin"),
    "dtd": ("DTD", "split_arg", 47, Metric.TOP1, ("train", "val", "test"), "ROOT/dtd/{images,labels}"),
    "flowers102": ("Flowers102", "split_arg", 102, Metric.MEAN_PER_CLASS, ("train", "val", "test"),
                   "ROOT/flowers-102/{jpg,imagelabels.mat,setid.mat}"),
    "pets": ("OxfordIIITPet", "pets", 37, Metric.MEAN_PER_CLASS, ("train", "test"),
             "ROOT/oxford-iiit-pet/{images,annotations}"),
    "food101": ("Food101", "split_arg", 101, Metric.TOP1, ("train", "test"), "ROOT/food-101/{images,meta}"),
    "eurosat": ("EuroSAT", "whole", 10, Metric.TOP1, ("all",), "ROOT/eurosat/2750/<class>/*.jpg"),
    "aircraft": ("FGVCAircraft", "split_arg", 100, Metric.MEAN_PER_CLASS, ("train", "val", "test"),
                 "ROOT/fgvc-aircraft-2013b/data/{images,images_variant_*.txt}"),
    "cars": ("StanfordCars", "split_arg", 196, Metric.TOP1, ("train", "test"),
             "ROOT/stanford_cars/{cars_train,cars_test,devkit,cars_test_annos_withlabels.mat}"),
}
# The official number of images per split, which `check-data` compares against.
OFFICIAL_SIZES: dict[str, dict[str, int]] = {
    "cifar10": {"train": 50000, "test": 10000}, "cifar100": {"train": 50000, "test": 10000},
    "mnist": {"train": 60000, "test": 10000}, "svhn": {"train": 73257, "test": 26032},
    "stl10": {"train": 5000, "test": 8000}, "dtd": {"train": 1880, "val": 1880, "test": 1880},
    "flowers102": {"train": 1020, "val": 1020, "test": 6149}, "pets": {"train": 3680, "test": 3669},
    "food101": {"train": 75750, "test": 25250}, "eurosat": {"all": 27000},
    "aircraft": {"train": 3334, "val": 3333, "test": 3333}, "cars": {"train": 8144, "test": 8041},
}
LABEL_ATTRIBUTES = ("targets", "labels", "_labels", "y")


def make_loader(class_name: str, style: str):
    def load(split: str, root: Path | None) -> ImageSplit:
        import torchvision.datasets

        cls = getattr(torchvision.datasets, class_name)
        try:
            dataset = cls(str(root), download=False, **split_kwargs(style, split))
        except (RuntimeError, FileNotFoundError, OSError) as err:
            raise MissingDataError(f"torchvision {class_name} could not load split {split!r} from {root}: {err}. "
                                   f"Put the files in torchvision's layout there (download is disabled).") from None
        return split_from_torchvision(dataset)

    return load


def split_kwargs(style: str, split: str) -> dict[str, Any]:
    if style == "train_flag":
        return {"train": split == "train"}
    if style == "pets":
        return {"split": "trainval" if split == "train" else "test"}
    if style == "whole":
        return {}
    return {"split": split}


def split_from_torchvision(dataset: Any) -> ImageSplit:
    """Arrays when the dataset holds them in memory (CIFAR, MNIST, SVHN, STL), else lazy file access."""
    labels = np.asarray(next(getattr(dataset, a) for a in LABEL_ATTRIBUTES if hasattr(dataset, a)), dtype=np.int64)
    data = getattr(dataset, "data", None)
    if data is not None and not isinstance(data, list):
        array = np.asarray(data)
        if array.ndim == 4 and array.shape[1] == 3:  # SVHN / STL10 store CHW
            array = array.transpose(0, 2, 3, 1)
        return ImageSplit(np.ascontiguousarray(array, dtype=np.uint8), labels)
    files = getattr(dataset, "_image_files", None) or [path for path, _ in getattr(dataset, "samples", [])]
    return ImageSplit(list(files), labels)


for _name, (_cls, _style, _classes, _metric, _splits, _layout) in LAYOUTS.items():
    register_dataset(DatasetSpec(name=_name, num_classes=_classes, load=make_loader(_cls, _style), metric=_metric,
                                 splits=_splits, needs_root=True, layout=f"torchvision {_cls} layout: {_layout}",
                                 description=f"torchvision {_cls} from a local root",
                                 official_sizes=OFFICIAL_SIZES.get(_name, {})))
