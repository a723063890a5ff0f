"""Hugging Face `datasets` read from local files only (parquet, arrow or imagefolder; never the hub):

    datasets:
      my_set: {source: hf_local, root: /data/my_set, format: parquet, num_classes: 10}

with files ROOT/<split>/*.<format> (or ROOT/<split>-*.parquet), an image column and a label column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.data import SOURCES
from benchmark.data.base import DatasetSpec, ImageSplit
from benchmark.errors import MissingDataError
from benchmark.vocab import Metric

FORMATS = {"parquet": "parquet", "arrow": "arrow", "imagefolder": "*"}


def find_files(root: Path, split: str, fmt: str) -> list[str]:
    pattern = FORMATS[fmt]
    candidates = sorted((root / split).glob(f"*.{pattern}" if pattern != "*" else "**/*"))
    candidates += sorted(root.glob(f"{split}-*.{pattern}")) if pattern != "*" else []
    return [str(p) for p in candidates if p.is_file()]


def make_loader(fmt: str, image_column: str, label_column: str):
    def load(split: str, root: Path | None) -> ImageSplit:
        from datasets import load_dataset

        files = find_files(root, split, fmt) if root else []
        if not files:
            raise MissingDataError(f"no {fmt} files for split {split!r} under {root}. Expected "
                                   f"{root}/{split}/*.{FORMATS[fmt]} or {root}/{split}-*.{FORMATS[fmt]}.")
        table = load_dataset(fmt, data_files={split: files}, split=split)
        images = [np.asarray(img.convert("RGB") if img.mode not in ("L", "RGB") else img)
                  for img in table[image_column]]
        return ImageSplit(images, np.asarray(table[label_column], dtype=np.int64))

    return load


@SOURCES.register("hf_local")
def hf_local(name: str, num_classes: int, format: str = "parquet", image_column: str = "image",
             label_column: str = "label", metric: Metric = Metric.TOP1, splits: tuple[str, ...] = ("train", "test"),
             **fields) -> DatasetSpec:
    if format not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {format!r}")
    return DatasetSpec(name=name, num_classes=num_classes, load=make_loader(format, image_column, label_column),
                       metric=metric, splits=tuple(splits), needs_root=True,
                       layout=f"ROOT/<split>/*.{FORMATS[format]} readable by datasets.load_dataset({format!r})",
                       description=f"HF datasets from local {format} files", **fields)
