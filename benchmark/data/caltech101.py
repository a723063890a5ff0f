"""Caltech-101 from its official archive, split as the reference splits it.

The reference (ssl-transfer `datasets/caltech101.py`, `create_caltech101_splits`) lists
`101_ObjectCategories/` with torchvision's ImageFolder (102 classes, BACKGROUND_Google included, sorted),
seeds numpy's global generator with 0 and, class by class in that order, draws 30 indices WITH
replacement (`np.random.choice(indices, 30)`). Train is the distinct drawn images; test is all the
others. Its shipped lists hold 2,416 train and 6,728 test images; regenerating them from the class
sizes reproduces those lists line for line (tests/test_ericsson_data.py checks their digest).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.data import register_dataset
from benchmark.data.base import DatasetSpec, ImageSplit
from benchmark.data.image_folder import imagefolder_split
from benchmark.data.recipe import Archive, Recipe
from benchmark.errors import MissingDataError
from benchmark.vocab import Metric

DRAWS_PER_CLASS = 30
SEED = 0
FOLDER = "101_ObjectCategories"
LAYOUT = f"ROOT/{FOLDER}/<class>/image_NNNN.jpg (or ROOT/caltech101/{FOLDER}, torchvision's layout)"


def categories(root: Path | None) -> Path:
    for candidate in (Path(root or "") / FOLDER, Path(root or "") / "caltech101" / FOLDER):
        if candidate.is_dir():
            return candidate
    raise MissingDataError(f"Caltech-101: no {FOLDER}/ under {root}. Expected layout: {LAYOUT}.")


def reference_train_indices(labels: np.ndarray) -> np.ndarray:
    """Sorted indices of the distinct images the reference's seeded draw puts in train."""
    state = np.random.RandomState(SEED)  # the legacy generator np.random.seed(0) sets up
    chosen = [state.choice(np.flatnonzero(labels == c), DRAWS_PER_CLASS) for c in range(labels.max() + 1)]
    return np.unique(np.concatenate(chosen))


def load(split: str, root: Path | None) -> ImageSplit:
    everything = imagefolder_split(categories(root), LAYOUT)
    train = reference_train_indices(everything.labels)
    if split == "train":
        return everything.subset(train)
    return everything.subset(np.setdiff1d(np.arange(len(everything)), train))


register_dataset(DatasetSpec(
    name="caltech101", num_classes=102, load=load, metric=Metric.MEAN_PER_CLASS, needs_root=True, layout=LAYOUT,
    official_sizes={"train": 2416, "test": 6728},
    download="caltech-101.zip from data.caltech.edu (CaltechDATA), whose 101_ObjectCategories.tar.gz extracts "
             "to ROOT/101_ObjectCategories",
    fetch=Recipe((Archive("caltech-101.zip", "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip",
                          137414764, md5="3138e1922a9193bfa496528edbbc45d0",
                          source="torchvision's md5; the size as data.caltech.edu serves it",
                          inner="caltech-101/101_ObjectCategories.tar.gz"),),
                 page="https://data.caltech.edu/records/mzrjq-6wc02"),
    description="Caltech-101 (102 classes with background), the reference's seeded 30-draw train split"))
