"""Label fractions: a dataset's labelled train split cut down, as SimCLR's semi-supervised evaluation
trains on 1% and 10% of ImageNet's labels. Two options of a suite's dataset entry, for every protocol
that reads the dataset (linear, linear_sgd, finetune, ...):

    imagenet: {train_list: simclr_1percent}   # SimCLR's official list (12,811 images), fetched and checked
    cifar10: {train_fraction: 0.01}           # a seeded, class-stratified 1% of each class's train images

`train_list` is a registered official list's name or a file of one image file name per line (matched
against the train images' file names; a split held as arrays is matched by position, 0-based). A list
naming images the split lacks, a fraction or list that leaves a class without an image, and a missing
list file are one message each. Where the dataset has no official val split, the validation hold-out is
drawn from the kept images, as the reference draws it from the whole train split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.data.base import ImageSplit
from benchmark.data.recipe import Archive
from benchmark.errors import MissingDataError, UserError

SIMCLR_COMMIT = "383d4143fd8cf7879ae10f1046a9baeb753ff438"  # google-research/simclr, where both lists were read
SIMCLR_LISTS = f"https://raw.githubusercontent.com/google-research/simclr/{SIMCLR_COMMIT}/imagenet_subsets"
OFFICIAL_LISTS = {  # name -> the list as published; size and sha256 measured on the file at SIMCLR_COMMIT
    "simclr_1percent": Archive("1percent.txt", f"{SIMCLR_LISTS}/1percent.txt", 260_323,
                               sha256="71e82a48ba78252683ae334c4d019ebd5c6e855b9599c1389fbe83eb9549cf17",
                               source="google-research/simclr imagenet_subsets (12,811 names)"),
    "simclr_10percent": Archive("10percent.txt", f"{SIMCLR_LISTS}/10percent.txt", 2_603_168,
                                sha256="6d09de11e7bdaf5b1f3b1f249b6183695f97310cdd20f0c03e7235b6b9392091",
                                source="google-research/simclr imagenet_subsets (128,116 names)"),
}
LIST_NAMES = {"simclr_1percent": 12_811, "simclr_10percent": 128_116}  # lines, for cost estimates


@dataclass(frozen=True)
class Labelled:
    """Which train images keep their labels: a fraction of each class, or those a list names (or both:
    the list first)."""

    fraction: float | None = None
    list_path: Path | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.fraction is not None and (isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float))
                                          or not 0 < self.fraction <= 1):
            raise UserError(f"train_fraction must be a number in (0, 1] (0.01 for 1% of the labels), got "
                            f"{self.fraction!r}")

    def identity(self) -> dict:
        """What the cache keys hold: the fraction, and the list's content (not its path)."""
        digest = hashlib.sha256(self.list_path.read_bytes()).hexdigest() if self.list_path else None
        return {"train_fraction": self.fraction, "train_list_sha256": digest}

    def select(self, train: ImageSplit) -> ImageSplit:
        """The kept train images; every class the split has must keep at least one."""
        kept = np.arange(len(train))
        if self.list_path is not None:
            kept = listed_positions(train, read_list(self.list_path), self.list_path)
        if self.fraction is not None:
            kept = kept[stratified_fraction(train.labels[kept], self.fraction, self.seed)]
        empty = sorted(set(np.unique(train.labels).tolist()) - set(np.unique(train.labels[kept]).tolist()))
        if empty:
            raise UserError(f"the label fraction (train_fraction {self.fraction}, train_list {self.list_path}) leaves "
                            f"{len(empty)} class(es) without a train image (first: {empty[:5]}); raise the fraction "
                            f"or use a list that names every class")
        return train.subset(np.sort(kept))


def resolve_list(value: str, archives_dir: Path | None) -> Path:
    """An official list's file in the archives folder (`data fetch` puts it there), or the user's own file."""
    if value in OFFICIAL_LISTS:
        archive = OFFICIAL_LISTS[value]
        if archives_dir is None:
            raise UserError(f"train_list {value}: give --data-root, where `data fetch` keeps it in _archives/")
        path = archives_dir / archive.file
        if not path.is_file():
            raise MissingDataError(f"train_list {value}: {path} is missing; run `data fetch` for this suite, or "
                                   f"download {archive.url} there (sha256 {archive.sha256})")
        return path
    path = Path(value).expanduser()
    if not path.is_file():
        raise MissingDataError(f"train_list {value}: no such file, and not an official list "
                               f"({', '.join(OFFICIAL_LISTS)})")
    return path


def read_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def listed_positions(train: ImageSplit, names: list[str], path: Path) -> np.ndarray:
    """Positions of the named images: by file name where the split has files, else by 0-based position."""
    images = train.images
    if isinstance(images, list) and images and isinstance(images[0], (str, Path)):
        where = {Path(image).name: i for i, image in enumerate(images)}
    else:
        where = {str(i): i for i in range(len(train))}
    missing = [name for name in names if name not in where]
    if missing:
        raise UserError(f"train_list {path} names {len(missing):,} image(s) that the train split does not have "
                        f"(first: {missing[:3]}); it must name the split's file names (or positions, for a split "
                        f"held as arrays)")
    return np.array(sorted({where[name] for name in names}), dtype=np.int64)


def stratified_fraction(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Positions of round(fraction x n) images of each class (seeded draws), in order."""
    rng = np.random.default_rng(seed)
    kept = [np.sort(rng.choice(members, int(round(fraction * len(members))), replace=False))
            for members in (np.flatnonzero(labels == c) for c in np.unique(labels))]
    return np.sort(np.concatenate(kept)) if kept else np.zeros(0, dtype=np.int64)
