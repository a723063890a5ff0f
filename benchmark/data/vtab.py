"""VTAB-1k (Zhai et al., "A Large-scale Study of Representation Learning with the Visual Task Adaptation
Benchmark", 2019): 19 tasks in three groups, each with 1,000 labelled training images.

VTAB's rules (google-research/task_adaptation, `data/*.py`): each task's `train800` is the first 800
images of its train split, `val200` the first 200 of its validation split, `train800val200` their union;
hyperparameters are chosen by training on train800 and scoring val200, and the final model trains on
train800val200 and is scored on the task's test split. The train / validation / test splits come from
TFDS in TFDS's order, so they are not reproducible from other copies of the data; researchers use the
materialised 1k folders (NOAH's `vtab-1k` distribution, read by VPT, NOAH, mmpretrain's Vtab1K):

    DATA_ROOT/vtab-1k/<task>/images/...          the images
    DATA_ROOT/vtab-1k/<task>/train800.txt        `<image path relative to the task folder> <label>` per line
    DATA_ROOT/vtab-1k/<task>/val200.txt
    DATA_ROOT/vtab-1k/<task>/train800val200.txt  train800 + val200 (checked to be exactly that)
    DATA_ROOT/vtab-1k/<task>/test.txt

Each task is the dataset `vtab_<task>` with splits train (train800), val (val200) and test. Our protocols
choose on val and refit on train+val, which is VTAB's train800 -> val200, then train800val200 -> test.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from benchmark.data import register_dataset
from benchmark.data.base import DatasetSpec, ImageSplit
from benchmark.errors import MissingDataError, UserError
from benchmark.groups import VtabGroup, vtab_dataset, vtab_group


@dataclass(frozen=True)
class VtabTask:
    folder: str  # its folder in the vtab-1k distribution
    classes: int
    what: str

    @property
    def group(self) -> VtabGroup:
        return vtab_group(self.folder)


TASKS = (
    VtabTask("cifar", 100, "CIFAR-100"),
    VtabTask("caltech101", 102, "Caltech-101 (with the background class)"),
    VtabTask("dtd", 47, "Describable Textures"),
    VtabTask("oxford_flowers102", 102, "Oxford Flowers-102"),
    VtabTask("oxford_iiit_pet", 37, "Oxford-IIIT Pets"),
    VtabTask("svhn", 10, "SVHN digits"),
    VtabTask("sun397", 397, "SUN397 scenes"),
    VtabTask("patch_camelyon", 2, "PatchCamelyon metastases"),
    VtabTask("eurosat", 10, "EuroSAT land use"),
    VtabTask("resisc45", 45, "RESISC45 remote sensing scenes"),
    VtabTask("diabetic_retinopathy", 5, "Diabetic retinopathy grade (btgraham-300)"),
    VtabTask("clevr_count", 8, "CLEVR: number of objects"),
    VtabTask("clevr_dist", 6, "CLEVR: distance to the closest object"),
    VtabTask("dmlab", 6, "DeepMind Lab: distance to rewards"),
    VtabTask("kitti", 4, "KITTI: distance to the closest vehicle"),
    VtabTask("dsprites_loc", 16, "dSprites: x position"),
    VtabTask("dsprites_ori", 16, "dSprites: orientation"),
    VtabTask("smallnorb_azi", 18, "smallNORB: azimuth"),
    VtabTask("smallnorb_ele", 9, "smallNORB: elevation"),
)
SPLIT_FILES = {"train": "train800.txt", "val": "val200.txt", "test": "test.txt"}
RULE_SIZES = {"train": 800, "val": 200}  # VTAB-1k's definition; the test split is each task's own


def read_list(root: Path, file: str) -> list[tuple[str, int]]:
    """The `(relative path, label)` lines of one of a task folder's split lists."""
    path = root / file
    if not path.is_file():
        raise MissingDataError(f"{path} is missing; a VTAB-1k task folder holds {', '.join(SPLIT_FILES.values())} "
                               f"and train800val200.txt beside images/")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise UserError(f"{path} line {number}: expected `<image path> <label>`, got {line!r}")
        entries.append((fields[0], int(fields[1])))
    return entries


def check_union(root: Path, train: list[tuple[str, int]], val: list[tuple[str, int]]) -> None:
    """train800val200.txt, where present, must be train800 + val200 (VTAB's definition of the 1k split)."""
    if (root / "train800val200.txt").is_file() and sorted(read_list(root, "train800val200.txt")) != sorted(train + val):
        raise UserError(f"{root / 'train800val200.txt'} is not train800.txt + val200.txt; the folder is not a "
                        f"VTAB-1k task as published")


def load_task(task: VtabTask, split: str, root: Path | None) -> ImageSplit:
    if root is None:
        raise MissingDataError(f"{vtab_dataset(task.folder)} needs --data-root (DATA_ROOT/vtab-1k/{task.folder})")
    entries = read_list(root, SPLIT_FILES[split])
    if split == "val":
        check_union(root, read_list(root, SPLIT_FILES["train"]), entries)
    missing = [path for path, _ in entries if not (root / path).is_file()]
    if missing:
        raise MissingDataError(f"{root / SPLIT_FILES[split]} names {len(missing)} image(s) not in {root} "
                               f"(first: {missing[0]})")
    labels = np.array([label for _, label in entries], dtype=np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= task.classes):
        raise UserError(f"{root / SPLIT_FILES[split]}: labels in [{labels.min()}, {labels.max()}], but "
                        f"{task.what} has {task.classes} classes")
    return ImageSplit([root / path for path, _ in entries], labels)


for _task in TASKS:
    register_dataset(DatasetSpec(
        name=vtab_dataset(_task.folder), num_classes=_task.classes, load=partial(load_task, _task),
        splits=("train", "val", "test"), needs_root=True, folder=f"vtab-1k/{_task.folder}",
        official_sizes=dict(RULE_SIZES),
        layout="VTAB-1k task folder: images/ and train800.txt, val200.txt, train800val200.txt, test.txt "
               "(`<image path> <label>` per line)",
        description=f"VTAB-1k {_task.group}: {_task.what}",
        download="the vtab-1k folders as VPT / NOAH distribute them (NOAH's vtab-1k.zip), unzipped into DATA_ROOT"))
