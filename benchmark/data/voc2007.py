"""PASCAL VOC 2007 classification (multi-label, 20 classes, VOC 11-point mAP) from a local VOCdevkit.

Labels are read from the XML annotations: an image is positive for every class with at least one
object in it (objects marked difficult included, as torchvision's VOCDetection parses them all).
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

from benchmark.data import register_dataset
from benchmark.data.base import DatasetSpec, ImageSplit
from benchmark.data.voc_segmentation import VOC_CLASSES
from benchmark.errors import MissingDataError
from benchmark.vocab import Metric, TaskType

CLASSES = VOC_CLASSES[1:]  # no background
LAYOUT = ("ROOT/VOCdevkit/VOC2007/{JPEGImages/<id>.jpg, Annotations/<id>.xml, "
          "ImageSets/Main/{train,val,test}.txt} (the VOCtrainval and VOCtest tars extracted together)")


def load(split: str, root: Path | None) -> ImageSplit:
    base = Path(root or "") / "VOCdevkit" / "VOC2007"
    listing = base / "ImageSets" / "Main" / f"{split}.txt"
    if not listing.is_file():
        raise MissingDataError(f"VOC2007 split list {listing} not found. Expected layout: {LAYOUT}.")
    ids = listing.read_text().split()
    labels = np.zeros((len(ids), len(CLASSES)), dtype=np.int64)
    for row, image_id in enumerate(ids):
        for name in ElementTree.parse(base / "Annotations" / f"{image_id}.xml").iter("name"):
            if name.text in CLASSES:
                labels[row, CLASSES.index(name.text)] = 1
    return ImageSplit([base / "JPEGImages" / f"{i}.jpg" for i in ids], labels)


register_dataset(DatasetSpec(name="voc2007", num_classes=20, load=load, metric=Metric.VOC_MAP, task=TaskType.MULTILABEL,
                             splits=("train", "val", "test"), needs_root=True, layout=LAYOUT, class_names=CLASSES,
                             official_sizes={"train": 2501, "val": 2510, "test": 4952},
                             description="PASCAL VOC 2007 classification (multi-label) from a local VOCdevkit"))
