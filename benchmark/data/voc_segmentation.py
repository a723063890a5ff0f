"""PASCAL VOC-style semantic segmentation from a local root:

    ROOT/JPEGImages/<id>.jpg
    ROOT/SegmentationClass/<id>.png      (palette PNG: class indices, 255 = void/boundary)
    ROOT/ImageSets/Segmentation/{train,val}.txt

`voc2012_seg` is the registered dataset (21 classes, official train/val, val used as the test split);
`source: voc_segmentation` declares any tree in this layout inline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from benchmark.data import SOURCES, register_dataset
from benchmark.data.base import DatasetSpec, ImageSplit
from benchmark.errors import MissingDataError
from benchmark.vocab import Metric, TaskType

LAYOUT = ("ROOT/JPEGImages/<id>.jpg, ROOT/SegmentationClass/<id>.png, "
          "ROOT/ImageSets/Segmentation/{train,val}.txt")
SPLIT_FILES = {"train": "train", "test": "val", "val": "val"}
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")


def load(split: str, root: Path | None) -> ImageSplit:
    listing = (root / "ImageSets" / "Segmentation" / f"{SPLIT_FILES[split]}.txt") if root else None
    if listing is None or not listing.is_file():
        raise MissingDataError(f"VOC segmentation split list {listing} not found. Expected layout: {LAYOUT}.")
    ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    images = [root / "JPEGImages" / f"{i}.jpg" for i in ids]
    masks = np.empty(len(ids), dtype=object)
    for k, i in enumerate(ids):
        with Image.open(root / "SegmentationClass" / f"{i}.png") as mask:
            masks[k] = np.array(mask, dtype=np.uint8)  # palette indices are the class ids
    return ImageSplit(images, masks)


@SOURCES.register("voc_segmentation")
def voc_segmentation(name: str, num_classes: int = 21, **fields) -> DatasetSpec:
    return DatasetSpec(name=name, num_classes=num_classes, load=load, metric=Metric.MIOU, task=TaskType.SEGMENTATION,
                       needs_root=True, layout=LAYOUT, description="VOC-style segmentation tree", **fields)


register_dataset(DatasetSpec(name="voc2012_seg", num_classes=21, load=load, metric=Metric.MIOU, task=TaskType.SEGMENTATION,
                             needs_root=True, layout=LAYOUT, class_names=VOC_CLASSES,
                             description="PASCAL VOC 2012 segmentation (train / val as test) from a local root"))
