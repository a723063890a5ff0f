"""PASCAL VOC 2007 classification (multi-label, 20 classes, VOC 11-point mAP) from a local VOCdevkit.

Labels as the reference (ssl-transfer `datasets/voc2007.py`) reads them: from the per-class lists
`ImageSets/Main/<class>_<split>.txt`, one "<image id> <flag>" line per image, where only flag 1 is a
positive. Flag 0 (the class appears only as objects marked difficult) and -1 (absent) are negatives,
so an image whose only instances of a class are difficult does not count as showing it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.data import register_dataset
from benchmark.data.base import DatasetSpec, ImageSplit
from benchmark.data.recipe import Archive, Recipe
from benchmark.data.voc_segmentation import VOC_CLASSES
from benchmark.errors import MissingDataError, UserError
from benchmark.vocab import Metric, TaskType

CLASSES = VOC_CLASSES[1:]  # no background
LAYOUT = ("ROOT/VOCdevkit/VOC2007/{JPEGImages/<id>.jpg, ImageSets/Main/{train,val,test}.txt, "
          "ImageSets/Main/<class>_{train,val,test}.txt} (the VOCtrainval and VOCtest tars extracted together)")


def main_lists(root: Path | None) -> Path:
    return Path(root or "") / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main"


def read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise MissingDataError(f"VOC2007 list {path} not found. Expected layout: {LAYOUT}.")
    return path.read_text().split()


def class_labels(lists: Path, split: str, ids: list[str]) -> np.ndarray:
    """(images, 20) multi-hot: 1 where the class list flags the image 1; 0 and -1 are negatives."""
    row = {image_id: i for i, image_id in enumerate(ids)}
    labels = np.zeros((len(ids), len(CLASSES)), dtype=np.int64)
    for column, name in enumerate(CLASSES):
        entries = read_list(lists / f"{name}_{split}.txt")
        for image_id, flag in zip(entries[::2], entries[1::2]):
            if image_id not in row:
                raise UserError(f"{lists / f'{name}_{split}.txt'} names image {image_id}, which {split}.txt lacks; "
                                f"extract the VOCtrainval and VOCtest archives into the same VOCdevkit")
            labels[row[image_id], column] = int(flag == "1")
    return labels

# torchvision's URLs and md5s; the sizes are TensorFlow Datasets' for the same files
RECIPE = Recipe(tuple(
    Archive(file, f"https://thor.robots.ox.ac.uk/pascal/VOC/voc2007/{file}", size, md5=md5,
            source="torchvision's md5; TensorFlow Datasets' size")
    for file, size, md5 in (("VOCtrainval_06-Nov-2007.tar", 460032000, "c52e279531787c972589f7e41ab4ae64"),
                            ("VOCtest_06-Nov-2007.tar", 451020800, "b6e924de25625d8de591ea690078ad9f"))),
    page="http://host.robots.ox.ac.uk/pascal/VOC/voc2007/")


def load(split: str, root: Path | None) -> ImageSplit:
    lists = main_lists(root)
    ids = read_list(lists / f"{split}.txt")
    images = lists.parents[1] / "JPEGImages"
    return ImageSplit([images / f"{i}.jpg" for i in ids], class_labels(lists, split, ids))


register_dataset(DatasetSpec(name="voc2007", num_classes=20, load=load, metric=Metric.VOC_MAP, task=TaskType.MULTILABEL,
                             splits=("train", "val", "test"), needs_root=True, layout=LAYOUT, class_names=CLASSES,
                             official_sizes={"train": 2501, "val": 2510, "test": 4952}, version=2,
                             download="VOCtrainval_06-Nov-2007.tar and VOCtest_06-Nov-2007.tar from "
                                      "host.robots.ox.ac.uk/pascal/VOC/voc2007, both extracted into ROOT",
                             fetch=RECIPE,
                             description="PASCAL VOC 2007 classification (multi-label) from a local VOCdevkit"))
