"""Fashion-MNIST (Xiao et al. 2017): 60,000 train + 10,000 test, 28x28 grey, 10 classes.

Read from IDX files: by default Debian's `dataset-fashion-mnist` package, or a user's root in the
torchvision layout (`ROOT/FashionMNIST/raw/*-ubyte[.gz]`) or with the four files directly in ROOT.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from benchmark.data import register_dataset
from benchmark.data.base import DatasetSpec, ImageSplit
from benchmark.errors import MissingDataError, UserError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")
LAYOUT = ("the four IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...) in "
          "ROOT or ROOT/FashionMNIST/raw (torchvision layout); or install Debian's package: "
          "apt-get install dataset-fashion-mnist")


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (optionally gzipped): magic, dims, then big-endian uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path} is not an IDX file of unsigned bytes; re-download or reinstall it")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise UserError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {data.size}")
    return data.reshape(dims)


def find_idx(stem: str, root: Path | None) -> Path:
    folders = [root, root / "FashionMNIST" / "raw"] if root else [DEBIAN_DIR]
    for folder in folders:
        for name in (stem, stem + ".gz"):
            if (folder / name).exists():
                return folder / name
    raise MissingDataError(f"Fashion-MNIST file {stem}[.gz] not found in {', '.join(map(str, folders))}. "
                           f"Expected layout: {LAYOUT}.")


def load(split: str, root: Path | None) -> ImageSplit:
    images_stem, labels_stem = FILES[split]
    images = read_idx(find_idx(images_stem, root))
    labels = read_idx(find_idx(labels_stem, root)).astype(np.int64)
    return ImageSplit(images, labels)


SPEC = register_dataset(DatasetSpec(
    name="fashion_mnist", num_classes=10, load=load, layout=LAYOUT, class_names=CLASSES,
    official_sizes={"train": 60000, "test": 10000},
    description="Fashion-MNIST, 60k/10k official split, 28x28 grey (Debian dataset-fashion-mnist)"))
