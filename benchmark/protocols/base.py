"""The protocol interface. A protocol scores what the runner hands it; it never imports an encoder or a
dataset module. As in scikit-learn, construction only stores (validated) hyperparameters.

Inputs come in two shapes, by what a protocol needs:
- `FeatureTask`: cached features of train / val / test (pooled (N, D) or dense (N, C, h, w)), plus,
  for zero-shot, the class names and a `TextTower`.
- `ModelTask`: the encoder's trainable network, the image pool and, per split, indices into that pool
  (for fine-tuning).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol as Interface, TypeVar

import numpy as np
import torch
from torch import nn

from benchmark.errors import UserError
from benchmark.identity import Component, component_versions
from benchmark.metrics import SCORING
from benchmark.outputs import PerExample
from benchmark.params import CheckedParams, build_params
from benchmark.preprocessing import Preprocessing
from benchmark.vocab import EncoderWork, FeatureKind, Metric, TaskType

T = TypeVar("T")


@dataclass(frozen=True)
class Features:
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def concat(parts: Sequence[Features]) -> Features:
    return Features(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]))


class Rows:
    """The feature rows of several splits read as one array, without concatenating them: a slice or an
    index array returns only the rows asked for (train+val of ImageNet would otherwise be a 10 GB copy)."""

    def __init__(self, parts: Sequence[np.ndarray]):
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(part) for part in self.parts])
        self.shape = (int(self.offsets[-1]), *self.parts[0].shape[1:])
        self.size = int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: slice | np.ndarray) -> np.ndarray:
        if isinstance(key, slice) and key.step in (None, 1):
            start, stop, _ = key.indices(len(self))
            pieces = [part[max(start - first, 0):max(stop - first, 0)] for part, first in zip(self.parts, self.offsets)]
            pieces = [piece for piece in pieces if len(piece)] or pieces[:1]
            return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)  # within one split: a view, no copy
        if isinstance(key, slice):
            key = np.arange(*key.indices(len(self)))
        key = np.asarray(key)
        which = np.searchsorted(self.offsets, key, side="right") - 1
        out = np.empty((len(key), *self.shape[1:]), dtype=self.parts[0].dtype)
        for i, part in enumerate(self.parts):
            positions = np.flatnonzero(which == i)
            if len(positions):
                out[positions] = part[key[positions] - self.offsets[i]]
        return out


class TextTower(Interface):
    """An image-text model's text side, as zero-shot needs it (an `Encoder` with a text tower is one)."""

    logit_scale: float | None

    def encode_text(self, prompts: list[str]) -> torch.Tensor: ...


class ImagePool(Interface):
    """Images by position, decoded on demand to uint8 CHW tensors (a dataset's `ImageSplit` is one)."""

    def __len__(self) -> int: ...

    def image_tensor(self, index: int) -> torch.Tensor: ...


class TrainableEncoder(Interface):
    """What fine-tuning copies and trains, and what linear_sgd's augment mode runs frozen (an `Encoder` is one)."""

    model: nn.Module

    def encode(self, images: torch.Tensor) -> torch.Tensor: ...

    def to(self, device: str) -> TrainableEncoder: ...


class SharedWork:
    """Results that several protocols compute from the same inputs (the linear sweep that linear and
    calibration both run), computed once per inputs object. Keys name the computation and its params."""

    def __init__(self) -> None:
        self._done: dict[Any, Any] = {}

    def get_or_compute(self, key: Any, compute: Callable[[], T]) -> T:
        if key not in self._done:
            self._done[key] = compute()
        return self._done[key]


@dataclass(frozen=True)
class TaskInputs:
    """Train and val for model selection, test for the score; what the dataset declares."""

    train: Features
    val: Features
    test: Features
    num_classes: int
    metric: Metric
    task: TaskType = TaskType.MULTICLASS
    dataset: str = ""  # its name, for messages and per-dataset defaults (zero-shot templates)
    device: str = "cpu"  # the run's device: protocols compute there and hand back CPU numpy arrays
    test_classes: tuple[int, ...] = ()  # test predictions restricted to these classes (ImageNet-A: 200 of 1000)

    @property
    def trainval(self) -> Features:
        return concat([self.train, self.val])

    @property
    def split_sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    @property
    def is_single_pool(self) -> bool:
        """A dataset with one split (few-shot pools): everything is in `train`."""
        return len(self.test) == 0


@dataclass(frozen=True)
class FeatureTask(TaskInputs):
    """Cached features (`x`) and labels of each split. Zero-shot also gets class names and a text tower;
    image-text retrieval the captions (`texts`) that an image-text dataset's labels index."""

    class_names: tuple[str, ...] = ()
    text: TextTower | None = None
    texts: tuple[str, ...] = ()
    shared: SharedWork = field(default_factory=SharedWork, compare=False, repr=False)


@dataclass(frozen=True)
class ModelTask(TaskInputs):
    """For protocols that train the encoder: `x` of each split holds indices into `images`."""

    images: ImagePool | None = None
    encoder: TrainableEncoder | None = None
    preprocessing: Preprocessing | None = None
    workers: int = 0  # DataLoader processes that decode and augment training images


@dataclass
class ProtocolResult:
    value: float  # the headline number, in percent
    metric: Metric
    chosen: dict[str, Any] = field(default_factory=dict)  # hyperparameters selected on validation
    details: dict[str, Any] = field(default_factory=dict)  # every other number worth keeping
    per_example: PerExample = field(default_factory=PerExample)  # what paired tests and bootstraps read


class Protocol:
    """Subclasses set `name`, `version`, `requires` and a frozen `Params(CheckedParams)` dataclass whose
    `constraints` cover every field; `evaluate` receives a `FeatureTask` or, when `requires` holds
    MODEL, a `ModelTask`."""

    name: ClassVar[str]
    version: ClassVar[str]
    requires: ClassVar[tuple[FeatureKind, ...]] = (FeatureKind.POOLED,)  # encoder capabilities
    tasks: ClassVar[tuple[TaskType, ...]] = (TaskType.MULTICLASS, TaskType.MULTILABEL)  # label types it scores
    selects_on_val: ClassVar[bool] = False  # reads `val` (so a hold-out split's seed changes its result)
    components: ClassVar[tuple[Component, ...]] = (SCORING,)  # shared code it runs (part of every cell key)
    restricts_classes: ClassVar[bool] = False  # applies `test_classes` to its class scores (see `restricted`)

    @dataclass(frozen=True)
    class Params(CheckedParams):
        pass

    def __init__(self, **params: Any):
        self.params = build_params(self.Params, params, f"protocol {self.name}")

    def input_kind(self) -> FeatureKind:
        """Which data the runner assembles: the model itself, dense maps, or pooled features (an instance's
        `requires` may depend on its parameters: linear_sgd with `augment: true` runs the encoder)."""
        for kind in (FeatureKind.MODEL, FeatureKind.DENSE):
            if kind in self.requires:
                return kind
        return FeatureKind.POOLED

    def encoder_work(self) -> EncoderWork:
        """What the cell asks of the encoder: training it when the protocol takes the model, else features
        (a protocol that runs the frozen encoder itself says FORWARD: linear_sgd with `augment: true`)."""
        return EncoderWork.TRAINING if FeatureKind.MODEL in self.requires else EncoderWork.FEATURES

    @classmethod
    def code_versions(cls) -> dict[str, str]:
        """Its own version and those of every shared component it runs: a cell key holds them all."""
        return {cls.name: cls.version, **component_versions(cls.components)}

    @classmethod
    def takes_seed(cls) -> bool:
        """Whether a `seed` parameter drives its randomness (episodes, initialisation, subsampling)."""
        return any(f.name == "seed" for f in fields(cls.Params))

    def evaluate(self, data: Any) -> ProtocolResult:
        raise NotImplementedError


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm in float32 (cosine similarity becomes a dot product)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / temperature, stabilised by each row's maximum."""
    z = logits / temperature
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


FINITE_CHECK_BYTES = 1 << 26  # rows checked at once: a memory-mapped split is never read whole into memory


def check_finite(data: TaskInputs) -> None:
    for split in ("train", "val", "test"):
        x = getattr(data, split).x
        rows = max(1, FINITE_CHECK_BYTES // max(1, x[:1].nbytes))
        bad = sum(int((~np.isfinite(x[i:i + rows])).reshape(len(x[i:i + rows]), -1).any(axis=1).sum())
                  for i in range(0, len(x), rows))
        if bad:
            raise UserError(f"{bad} {split} feature vectors contain NaN or Inf; the encoder produced non-finite "
                            f"features (check its weights, or evaluate in float32)")


def require_test_split(data: TaskInputs, protocol: str) -> None:
    if data.is_single_pool or len(data.train) == 0:
        raise UserError(f"{protocol} needs train and test splits, but this dataset is a single pool; "
                        f"evaluate it with the fewshot protocol instead")


def skip_reason(protocol: type[Protocol] | Protocol, capabilities: Sequence[FeatureKind], task: TaskType,
                encoder: str, dataset: str, class_subset: bool = False) -> str:
    """Why a cell cannot run ('' when it can): a missing encoder capability, the wrong task type, or a
    dataset scored over a subset of its classes by a protocol that cannot restrict its predictions."""
    missing = [need for need in protocol.requires if need not in capabilities]
    if missing:
        return f"{encoder} has no {' / '.join(missing)} (needed by {protocol.name})"
    if task not in protocol.tasks:
        return f"{protocol.name} scores {' / '.join(protocol.tasks)} data; {dataset} is {task}"
    if class_subset and not protocol.restricts_classes:
        return (f"{dataset} is scored over a subset of its classes, and {protocol.name} cannot restrict its "
                f"predictions to them")
    return ""


def restricted(scores: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Class scores (N, K) with every class outside `classes` at -inf, so the prediction is the best of those
    (ImageNet-A and -R: the best of their 200 of ImageNet's 1000, as their authors score it); unchanged
    when `classes` is empty."""
    if not len(classes):
        return scores
    out = np.full_like(scores, -np.inf)
    out[:, list(classes)] = scores[:, list(classes)]
    return out
