"""SUN397 from its official archives, with the reference's partition 01 (50 train + 50 test per class).

As the reference reads it (ssl-transfer `datasets/sun397.py`): class names are the lines of
`ClassName.txt` without their leading "/x/" (so "bakery/shop" is one class), sorted; the split lists are
`Training_01.txt` / `Testing_01.txt` of the Partitions archive, one "/a/abbey/sun_xxx.jpg" path per line;
an image's label is the first class, in sorted order, whose "/<name>/" occurs in its path. (The
reference matches against the absolute path, so a root containing "/<class>/" could change a label; we
match against the listed path only.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.data import register_dataset
from benchmark.data.base import DatasetSpec, ImageSplit
from benchmark.data.recipe import Archive, Recipe
from benchmark.errors import MissingDataError, UserError

PARTITION = "01"
SITE = "https://vision.princeton.edu/projects/2010/SUN"
LISTS = {"train": f"Training_{PARTITION}.txt", "test": f"Testing_{PARTITION}.txt"}
LAYOUT = ("ROOT/SUN397/{ClassName.txt, a/abbey/sun_*.jpg, ...} with Training_01.txt and Testing_01.txt (the "
          "Partitions archive) in ROOT/SUN397, ROOT or ROOT/Partitions")


def images_dir(root: Path | None) -> Path:
    for candidate in (Path(root or "") / "SUN397", Path(root or "")):
        if (candidate / "ClassName.txt").is_file():
            return candidate
    raise MissingDataError(f"SUN397: no ClassName.txt in {root}/SUN397 or {root}. Expected layout: {LAYOUT}.")


def partition_file(root: Path | None, images: Path, split: str) -> Path:
    for folder in (images, Path(root or ""), Path(root or "") / "Partitions"):
        if (folder / LISTS[split]).is_file():
            return folder / LISTS[split]
    raise MissingDataError(f"SUN397: {LISTS[split]} not found next to {images} (or in {root}, {root}/Partitions); "
                           f"extract the Partitions archive there. Expected layout: {LAYOUT}.")


def class_names(images: Path) -> list[str]:
    return sorted(line[3:] for line in (images / "ClassName.txt").read_text().splitlines() if line.strip())


def label_of(path: str, names: list[str]) -> int:
    for index, name in enumerate(names):
        if f"/{name}/" in path:
            return index
    raise UserError(f"SUN397: {path} names no class of ClassName.txt; the partition and the images disagree")


def load(split: str, root: Path | None) -> ImageSplit:
    images = images_dir(root)
    names = class_names(images)
    listed = [line.strip() for line in partition_file(root, images, split).read_text().splitlines() if line.strip()]
    labels = np.asarray([label_of(path, names) for path in listed], dtype=np.int64)
    return ImageSplit([images / path.lstrip("/") for path in listed], labels)


register_dataset(DatasetSpec(
    name="sun397", num_classes=397, load=load, needs_root=True, layout=LAYOUT,
    official_sizes={"train": 19850, "test": 19850},
    download="SUN397.tar.gz and Partitions.zip from vision.princeton.edu/projects/2010/SUN; extract both into ROOT",
    fetch=Recipe((
        Archive("SUN397.tar.gz", f"{SITE}/SUN397.tar.gz", 39077296924, md5="8ca2778205c41d23104230ba66911c7a",
                sha256="f404130965a7ad77bed5ececc71e720ab50f3cc1e1bb257257610d38f3b928ec",
                source="torchvision's md5; TensorFlow Datasets' size and sha256"),
        Archive("Partitions.zip", f"{SITE}/download/Partitions.zip", 18293705,
                sha256="e3311ea5f812d4cc6faef194688343d1111f6cd6f70f2c62f393c2b8d6ba1ec9",
                source="TensorFlow Datasets' size and sha256")), page=f"{SITE}/"),
    description="SUN397 scenes, partition 01 as the reference reads it"))
