"""Revisited Oxford and Paris (Radenovic et al., CVPR 2018) in the layout revisitop's download script
writes: `ROOT/jpg/<name>.jpg` and `ROOT/gnd_<dataset>.pkl`, a pickle holding `imlist` (database image
names), `qimlist` (query image names, also in jpg/) and `gnd`, one dict per query with its box `bbx`
(x1, y1, x2, y2) and the database indices it counts as `easy`, `hard` and `junk`.

Split "train" is the database (each image's label is its own index, so it can be put back in order
after any shuffle); split "test" is the queries, each cropped to its box as the revisited protocol
does, labelled with a row of `metrics.Relevance` codes over the database. Images are decoded when read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data import register_dataset, safe_pickle
from benchmark.data.base import DatasetSpec, ImageFiles, ImageSplit
from benchmark.errors import MissingDataError
from benchmark.metrics import Relevance
from benchmark.vocab import Metric, TaskType


def read_ground_truth(root: Path, name: str) -> dict[str, Any]:
    path = root / f"gnd_{name}.pkl"
    if not path.exists():
        raise MissingDataError(f"{name}: no {path}; download it with revisitop's download script "
                               f"(http://cmp.felk.cvut.cz/revisitop/data/datasets/{name}/gnd_{name}.pkl) and put "
                               f"the images in {root / 'jpg'}")
    return safe_pickle.load(path)


def relevance_rows(gnd: list[dict[str, Any]], database_size: int) -> np.ndarray:
    rows = np.full((len(gnd), database_size), Relevance.NEGATIVE, dtype=np.int8)
    for row, query in zip(rows, gnd):
        row[np.asarray(query.get("easy", []), dtype=int)] = Relevance.EASY
        row[np.asarray(query.get("hard", []), dtype=int)] = Relevance.HARD
        row[np.asarray(query.get("junk", []), dtype=int)] = Relevance.JUNK
    return rows


def loader(name: str):
    def load(split: str, root: Path | None) -> ImageSplit:
        if root is None:
            raise MissingDataError(f"{name} needs a root (--data-root DIR holding {name}/jpg and "
                                   f"{name}/gnd_{name}.pkl)")
        truth = read_ground_truth(root, name)
        if split == "train":
            paths = tuple(root / "jpg" / f"{image}.jpg" for image in truth["imlist"])
            return ImageSplit(ImageFiles(paths, (None,) * len(paths)), np.arange(len(paths)))
        paths = tuple(root / "jpg" / f"{image}.jpg" for image in truth["qimlist"])
        boxes = tuple(tuple(float(v) for v in query["bbx"]) for query in truth["gnd"])
        return ImageSplit(ImageFiles(paths, boxes), relevance_rows(truth["gnd"], len(truth["imlist"])))

    return load


for _name, _sizes in (("roxford5k", {"train": 4993, "test": 70}), ("rparis6k", {"train": 6322, "test": 70})):
    register_dataset(DatasetSpec(
        name=_name, num_classes=1, load=loader(_name), metric=Metric.REVISITED_MAP, task=TaskType.INSTANCE,
        needs_root=True, official_sizes=_sizes, layout=f"ROOT/jpg/*.jpg, ROOT/gnd_{_name}.pkl",
        download=f"revisitop's download.py: http://cmp.felk.cvut.cz/revisitop/data/datasets/{_name}/ "
                 f"(jpg archive and gnd_{_name}.pkl)",
        description=f"revisited {_name[1:-2].title()} ({_sizes['train']} database images, 70 cropped queries); "
                    "mAP Easy / Medium / Hard"))
