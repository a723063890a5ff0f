"""Dataset specs, in-memory splits, and the root-resolution every loader shares."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmark.data.recipe import Recipe
from benchmark.errors import MissingDataError, UserError
from benchmark.metrics import SCORERS
from benchmark.vocab import Metric, TaskType, parse

DATA_ROOT_ENV = "TRANSFERBENCH_DATA"


@dataclass(frozen=True)
class ImageSplit:
    """One split: images (uint8 array N x H x W [x C], or a sequence of paths / PIL images / arrays)
    and labels (N,) ints or (N, classes) multi-hot."""

    images: Sequence[Any]
    labels: np.ndarray

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise UserError(f"split has {len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> ImageSplit:
        if isinstance(self.images, (np.ndarray, LazyImages)):
            return ImageSplit(self.images[indices], self.labels[indices])
        return ImageSplit([self.images[i] for i in indices], self.labels[indices])

    def image_tensor(self, index: int) -> torch.Tensor:
        """The image as a uint8 CHW tensor (decoding a file if needed)."""
        return to_uint8_chw(self.images[index])


class LazyImages(Sequence):
    """Images decoded one at a time when read; indexing with an index array gives another LazyImages,
    and `a + b` joins two of one kind, so subsets and pools never decode (or hold) the whole set."""

    def __add__(self, other: Any) -> LazyImages:
        raise NotImplementedError


@dataclass(frozen=True)
class ResizedFiles(LazyImages):
    """Image files that the reference resizes as it opens them (ChestX: every image to 256 x 256 before
    the few-shot transform); decoded one at a time, so a large split is never held in memory."""

    paths: tuple[Path, ...]
    size: tuple[int, int]  # (width, height), as PIL takes it

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (slice, np.ndarray, list)):
            chosen = np.arange(len(self.paths))[index]
            return ResizedFiles(tuple(self.paths[i] for i in chosen), self.size)
        with Image.open(self.paths[int(index)]) as opened:  # PIL's bicubic default, as the reference's Pillow
            return as_rgb(opened.resize(self.size, Image.Resampling.BICUBIC), self.paths[int(index)])

    def __add__(self, other: Any) -> ResizedFiles:
        if not isinstance(other, ResizedFiles) or other.size != self.size:
            return NotImplemented
        return ResizedFiles(self.paths + other.paths, self.size)


@dataclass(frozen=True)
class ImageFiles(LazyImages):
    """Image files, each decoded (and cropped to its box, where one is given) when read."""

    paths: tuple[Path, ...]
    boxes: tuple[tuple[float, float, float, float] | None, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (slice, np.ndarray, list)):
            chosen = np.arange(len(self.paths))[index]
            return ImageFiles(tuple(self.paths[i] for i in chosen), tuple(self.boxes[i] for i in chosen))
        with Image.open(self.paths[int(index)]) as opened:
            image = as_rgb(opened, self.paths[int(index)])
        box = self.boxes[int(index)]
        return image.crop(tuple(int(round(v)) for v in box)) if box is not None else image

    def __add__(self, other: Any) -> ImageFiles:
        return ImageFiles(self.paths + other.paths, self.boxes + other.boxes)


HIGH_DEPTH_RANGES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535}


def as_rgb(image: Image.Image, where: Any = "an image") -> Image.Image:
    """An 8-bit RGB image. 16-bit greyscale is scaled by its real range (PIL's own conversion clips every
    value above 255 to white); 32-bit integer or float images, whose range no file states, are refused."""
    if image.mode in HIGH_DEPTH_RANGES:
        scaled = np.asarray(image, dtype=np.float64) * (255.0 / HIGH_DEPTH_RANGES[image.mode])
        return Image.fromarray(np.round(scaled).astype(np.uint8), mode="L").convert("RGB")
    if image.mode in ("I", "F"):
        raise UserError(f"{where} is a {'32-bit integer' if image.mode == 'I' else 'floating-point'} image, whose "
                        f"value range the file does not state; convert it to 8- or 16-bit first")
    return image.convert("RGB")


def to_uint8_chw(image: Any) -> torch.Tensor:
    if isinstance(image, (str, Path)):
        with Image.open(image) as opened:
            image = as_rgb(opened, image)
    if isinstance(image, Image.Image):
        if image.mode not in ("L", "RGB"):
            image = as_rgb(image)
        image = np.asarray(image)
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise UserError(f"images must be uint8 (got {array.dtype}); scale them to 0-255 in the loader")
    if not array.flags.writeable or not array.flags.c_contiguous:  # torch wants writable memory
        array = np.array(array, order="C")
    tensor = torch.from_numpy(array)
    return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)


SplitLoader = Callable[[str, "Path | None"], ImageSplit]
TextLoader = Callable[["Path | None"], tuple[str, ...]]


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the harness needs to know about a dataset; `load(split, root)` returns an ImageSplit.

    A dataset with a "val" split uses it for model selection (Ericsson's official-val datasets);
    otherwise protocols hold out part of train.
    """

    name: str
    num_classes: int
    load: SplitLoader = field(repr=False, compare=False)
    metric: Metric = Metric.TOP1  # resolved through benchmark.metrics.SCORERS
    task: TaskType = TaskType.MULTICLASS
    splits: tuple[str, ...] = ("train", "test")
    needs_root: bool = False
    layout: str = ""
    description: str = ""
    version: int = 1
    class_names: tuple[str, ...] = ()
    official_sizes: dict[str, int] = field(default_factory=dict, compare=False)  # images per split, for check-data
    download: str = ""  # the official archive(s) and where to extract them, for check-data
    fetch: Recipe | None = field(default=None, repr=False, compare=False)  # for `data fetch`
    revision: str = ""  # the data's revision where a hub gives one (recorded in cache keys and rows)
    texts: TextLoader | None = field(default=None, repr=False, compare=False)  # image-text: captions(root)
    folder: str = ""  # where it lives under the data root, when not in a folder of its own name (vtab-1k/cifar)
    train_from: str = ""  # a test set only: the dataset whose train (and val) splits fit its heads (imagenet_v2)
    class_subset: tuple[int, ...] = ()  # the classes its labels cover; predictions are restricted to them (imagenet_a)
    class_names_from: Callable[[], tuple[str, ...]] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metric", parse(Metric, self.metric, f"metric of dataset {self.name!r}"))
        object.__setattr__(self, "task", parse(TaskType, self.task, f"task type of dataset {self.name!r}"))
        if self.metric not in SCORERS:
            raise UserError(f"dataset {self.name!r}: {self.metric} is not a dataset metric; use one of "
                            f"{', '.join(SCORERS)}")

    def names(self) -> tuple[str, ...]:
        """The class names (read on first use where a library holds them: ImageNet's, from open_clip)."""
        return self.class_names or (self.class_names_from() if self.class_names_from is not None else ())

    @property
    def has_official_val(self) -> bool:
        return "val" in self.splits

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise UserError(f"dataset {self.name!r} has no split {split!r}; its splits are {list(self.splits)}")


def resolve_root(spec: DatasetSpec, explicit: str | Path | None, data_root: str | Path | None) -> Path | None:
    """The directory a dataset loads from: the suite's `root:`, else `<data root>/<name>` (or its `folder`).

    Datasets that ship inside registry packages need no root and get None unless one is given.
    """
    if explicit is not None:
        root = Path(explicit).expanduser()
    elif data_root is not None or os.environ.get(DATA_ROOT_ENV):
        root = Path(data_root or os.environ[DATA_ROOT_ENV]).expanduser() / (spec.folder or spec.name)
    elif spec.needs_root:
        raise missing_root_error(spec, None)
    else:
        return None
    if spec.needs_root and not root.exists():
        raise missing_root_error(spec, root)
    return root if root.exists() else None


def missing_root_error(spec: DatasetSpec, tried: Path | None) -> MissingDataError:
    where = f"looked in {tried}" if tried else "no data root is set"
    download = f" Download: {spec.download}." if spec.download else ""
    if spec.fetch is not None:
        download += (f" `transferbench data fetch --suite SUITE --only {spec.name} --data-root DIR` "
                     f"{'fetches it' if spec.fetch.automatic else 'lists its manual steps'}.")
    return MissingDataError(
        f"Dataset {spec.name!r} not found: {where}. Expected layout: {spec.layout or 'see the dataset docs'}."
        f"{download} "
        f"Fix: pass --data-root DIR (the dataset then lives in DIR/{spec.folder or spec.name}), set {DATA_ROOT_ENV}=DIR, "
        f"or give `root:` for {spec.name} in the suite YAML.")
