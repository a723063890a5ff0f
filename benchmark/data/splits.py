"""Seeded, stratified splits, saved as JSON so every encoder (and every numpy version) sees the same.

`saved_test_indices` reads `benchmark/data/splits/<name>.json`; the files are committed, and a test
regenerates each one to check it still matches its recipe.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmark.atomic import write_atomically
from benchmark.errors import UserError

if TYPE_CHECKING:
    from benchmark.data.base import ImageSplit

SPLITS_DIR = Path(__file__).parent / "splits"


def stratified_indices(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices holding `fraction` of each class (rounded, at least one), chosen by `seed`."""
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        count = max(1, int(round(fraction * len(members))))
        chosen.append(rng.permutation(members)[:count])
    return np.sort(np.concatenate(chosen))


def stratified_subset(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """A class-balanced subset of `size` items (per class in proportion), for budgeted suites."""
    if size >= len(labels):
        return np.arange(len(labels))
    return stratified_indices(labels, size / len(labels), seed)


HOLDOUT_FRACTION = 0.2  # the reference's validation share of train, where a dataset has no val split


def holdout_split(num_train: int, fraction: float = HOLDOUT_FRACTION, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ericsson's validation hold-out: shuffle range(n) with np.random.seed(seed); the first
    floor(fraction * n) indices validate, the rest train. Legacy seeding keeps it bit-stable."""
    indices = np.arange(num_train)
    np.random.RandomState(seed).shuffle(indices)
    cut = int(np.floor(fraction * num_train))
    return indices[cut:], indices[:cut]


def saved_test_indices(name: str, labels: np.ndarray, test_fraction: float, seed: int = 0) -> np.ndarray:
    """The saved test indices of a dataset that ships without a split (created on first use)."""
    path = SPLITS_DIR / f"{name}.json"  # shipped with the package
    if not path.exists():
        path = created_splits_dir() / f"{name}.json"  # never written into the installed package
    if not path.exists():
        write_split(path, name, labels, test_fraction, seed)
    record = json.loads(path.read_text())
    if record["num_items"] != len(labels):
        raise UserError(f"saved split {path} is for {record['num_items']} items but {name} has {len(labels)}; "
                        f"delete the file to regenerate it")
    return np.asarray(record["test_indices"], dtype=np.int64)


def created_splits_dir() -> Path:
    """Where splits made on first use are saved: `splits/` of the feature cache directory."""
    from benchmark.cache import default_cache_dir

    return default_cache_dir() / "splits"


def write_split(path: Path, name: str, labels: np.ndarray, test_fraction: float, seed: int) -> None:
    test = stratified_indices(labels, test_fraction, seed)
    record = {"dataset": name, "recipe": "stratified_indices", "seed": seed, "test_fraction": test_fraction,
              "num_items": len(labels), "test_indices": test.tolist()}
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(record) + "\n"))


def train_test_from_saved(name: str, labels: np.ndarray, test_fraction: float) -> dict[str, np.ndarray]:
    test = saved_test_indices(name, labels, test_fraction)
    train = np.setdiff1d(np.arange(len(labels)), test)
    return {"train": train, "test": test}


def saved_split_loader(name: str, all_images: Callable[[], ImageSplit], test_fraction: float
                       ) -> Callable[[str, Path | None], ImageSplit]:
    """The `load(split, root)` of a dataset that ships as one pool of images: split by its saved indices."""
    def load(split: str, root: Path | None) -> ImageSplit:
        data = all_images()
        return data.subset(train_test_from_saved(name, data.labels, test_fraction)[split])

    return load
