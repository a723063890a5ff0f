"""Image-caption test sets in Karpathy's split (Karpathy & Fei-Fei, CVPR 2015), as CLIP-style image-text
retrieval is reported (Flickr30k 1K test, MS-COCO 5K test). The layout is the official one:

    ROOT/dataset_flickr30k.json     Karpathy's caption_datasets.zip
    ROOT/flickr30k-images/*.jpg     the Flickr30k image archive

    ROOT/dataset_coco.json
    ROOT/val2014/*.jpg              COCO 2014 (each entry's `filepath` names its folder)

Each JSON entry of `images` has a `filename`, a `split` (train / restval / val / test), its `sentences`
(`raw` text each) and, for COCO, a `filepath`. Only the test images are loaded (nothing is trained):
split "test" holds them in file order, each labelled with the row of its captions' indices (-1 pads
images with fewer captions); `texts` are those captions, in the order the rows index them.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data import register_dataset
from benchmark.data.base import DatasetSpec, ImageFiles, ImageSplit
from benchmark.errors import MissingDataError, UserError
from benchmark.vocab import Metric, TaskType

CAPTIONS_URL = "https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip"


@functools.lru_cache(maxsize=4)
def test_entries(annotations: Path, needs_filepath: bool) -> tuple[dict[str, Any], ...]:
    """The test split's entries of a Karpathy JSON file, in file order (read and checked once per process)."""
    if not annotations.is_file():
        raise MissingDataError(f"no {annotations}; it is in Karpathy's {CAPTIONS_URL} (unzip it into "
                               f"{annotations.parent})")
    keys = ("filename", "sentences", "filepath") if needs_filepath else ("filename", "sentences")
    try:
        entries = tuple(e for e in json.loads(annotations.read_text())["images"] if e.get("split") == "test")
        for entry in entries:
            missing = [key for key in keys if key not in entry]
            if not missing and not all("raw" in sentence for sentence in entry["sentences"]):
                missing = ["a sentence's raw"]
            if missing:
                raise ValueError(f"a test entry lacks {', '.join(missing)}: {str(entry)[:120]}")
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as err:
        raise UserError(f"{annotations} is not Karpathy's caption file (`images`: entries with "
                        f"{', '.join(keys)} and a `raw` text per sentence); download it again from "
                        f"{CAPTIONS_URL} ({err})") from None
    return entries


def caption_rows(entries: tuple[dict[str, Any], ...]) -> np.ndarray:
    """(images, most captions) indices into the captions of all entries in order, -1 where an image has fewer."""
    counts = [len(entry["sentences"]) for entry in entries]
    rows = np.full((len(entries), max(counts, default=0)), -1, dtype=np.int64)
    start = 0
    for row, count in zip(rows, counts):
        row[:count] = np.arange(start, start + count)
        start += count
    return rows


def karpathy(name: str, annotations: str, image_dir: str | None) -> tuple:
    """The (split loader, caption loader) of one dataset; `image_dir` None: each entry's `filepath`."""
    def entries(root: Path | None) -> tuple[dict[str, Any], ...]:
        if root is None:
            raise MissingDataError(f"{name} needs a root (--data-root DIR holding {name}/{annotations} and its "
                                   f"images)")
        return test_entries((root / annotations).resolve(), needs_filepath=image_dir is None)

    def load(split: str, root: Path | None) -> ImageSplit:
        found = entries(root)
        paths = tuple(root / (image_dir or entry["filepath"]) / entry["filename"] for entry in found)
        return ImageSplit(ImageFiles(paths, (None,) * len(paths)), caption_rows(found))

    def texts(root: Path | None) -> tuple[str, ...]:
        return tuple(sentence["raw"] for entry in entries(root) for sentence in entry["sentences"])

    return load, texts


for _name, _json, _images, _sizes, _download in (
        ("flickr30k", "dataset_flickr30k.json", "flickr30k-images", {"test": 1000},
         "flickr30k-images.tar (https://shannon.cs.illinois.edu/DenotationGraph/) into ROOT/flickr30k-images"),
        ("mscoco_captions", "dataset_coco.json", None, {"test": 5000},
         "COCO val2014.zip (http://images.cocodataset.org/zips/val2014.zip) into ROOT/val2014")):
    _load, _texts = karpathy(_name, _json, _images)
    register_dataset(DatasetSpec(
        name=_name, num_classes=1, load=_load, texts=_texts, metric=Metric.MEAN_RECALL, task=TaskType.IMAGE_TEXT,
        splits=("test",), needs_root=True, official_sizes=_sizes,
        layout=f"ROOT/{_json}, ROOT/{_images or '<filepath>'}/*.jpg",
        download=f"{CAPTIONS_URL} ({_json}) and {_download}",
        description=f"{_name} Karpathy test split ({_sizes['test']} images, ~5 captions each): image-text recall@k"))
