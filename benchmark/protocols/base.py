"""The protocol interface. A protocol scores cached features; it never imports an encoder or a
dataset module. As in scikit-learn, construction only stores (validated) hyperparameters."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np

from benchmark.errors import UserError
from benchmark.registry import unknown_name_message


@dataclass(frozen=True)
class Features:
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class TaskData:
    """What one (encoder, dataset) cell gives a protocol: train and val for model selection, test for
    the score. `x` holds pooled features (N, D), dense maps (N, C, h, w) for dense protocols, or image
    indices for protocols that train the encoder (those also get `images`, `encoder`, `preprocessing`).
    Zero-shot protocols also get the class names and the encoder's text tower."""

    train: Features
    val: Features
    test: Features
    num_classes: int
    metric: str
    task: str = "multiclass"
    class_names: tuple[str, ...] = ()
    text_fn: Callable[[list[str]], Any] | None = None
    logit_scale: float | None = None
    images: Any = None  # ImageSplit of the whole train/val/test pool that `x` indexes (model protocols)
    encoder: Any = None
    preprocessing: Any = None
    dataset: str = ""
    cache_keys: dict[str, str] = field(default_factory=dict)

    @property
    def trainval(self) -> Features:
        return Features(np.concatenate([self.train.x, self.val.x]), np.concatenate([self.train.y, self.val.y]))

    @property
    def split_sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


@dataclass
class ProtocolResult:
    value: float  # the headline number, in percent
    metric: str
    chosen: dict[str, Any] = field(default_factory=dict)  # hyperparameters selected on validation
    details: dict[str, Any] = field(default_factory=dict)  # every other number worth keeping


class Protocol:
    """Subclasses set `name`, `version`, `requires` and a frozen `Params` dataclass of hyperparameters."""

    name: ClassVar[str]
    version: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ("pooled",)  # encoder capabilities (see encoders.base)
    tasks: ClassVar[tuple[str, ...]] = ("multiclass", "multilabel")  # dataset task types it can score

    @dataclass(frozen=True)
    class Params:
        pass

    def __init__(self, **params: Any):
        valid = [f.name for f in dataclasses.fields(self.Params)]
        for key in params:
            if key not in valid:
                raise UserError(unknown_name_message(f"{self.name} parameter", key, valid))
        self.params = self.Params(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})

    def evaluate(self, data: TaskData) -> ProtocolResult:
        raise NotImplementedError


def check_finite(data: TaskData) -> None:
    for split in ("train", "val", "test"):
        x = getattr(data, split).x
        if not np.all(np.isfinite(x)):
            bad = int((~np.isfinite(x)).any(axis=1).sum())
            raise UserError(f"{bad} {split} feature vectors contain NaN or Inf; the encoder produced non-finite "
                            f"features (check its weights, or evaluate in float32)")


def require_test_split(data: TaskData, protocol: str) -> None:
    if len(data.test) == 0 or len(data.train) == 0:
        raise UserError(f"{protocol} needs train and test splits, but this dataset is a single pool; "
                        f"evaluate it with the fewshot protocol instead")


def skip_reason(protocol: Protocol, capabilities: tuple[str, ...], task: str, encoder: str, dataset: str) -> str:
    """Why a cell cannot run ('' when it can): a missing encoder capability or the wrong task type."""
    missing = [need for need in protocol.requires if need not in capabilities]
    if missing:
        return f"{encoder} has no {' / '.join(missing)} (needed by {protocol.name})"
    if task not in protocol.tasks:
        return f"{protocol.name} scores {' / '.join(protocol.tasks)} data; {dataset} is {task}"
    return ""
