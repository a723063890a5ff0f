"""A linear probe for data too large for a full-batch solver: many heads trained by mini-batch SGD in one
pass over the features per epoch, as DINOv2's linear evaluation trains its grid (ImageNet's 1.28M x 2048
float32 features are 10.5 GB; the full-batch solvers would copy them to float64 and run on the CPU).

Every (learning rate, weight decay) pair of the grid is one head; one epoch reads each train row once, in
a seeded order, in batches gathered straight from the (memory-mapped) feature cache, so memory holds one
batch, not the features. Each step computes all heads' logits with one GEMM and updates each head with SGD
(momentum 0.9) at its own learning rate, scaled by batch_size / 256 and annealed by a cosine schedule. The
head with the first strictly best validation score (the linear protocol's rule, in grid order) is chosen;
as the linear protocol refits on train+val at its chosen C, its (lr, wd) is retrained on train+val and
scores the test split.

Two input modes, recorded in the row as `input`:
- `features` (default): the cached features, as DINOv2 trains its linear grid (minutes on a GPU);
- `augment: true`: the SSL papers' recipe (MoCo, SimCLR, BYOL, SwAV: about 100 epochs of a linear head on a
  frozen encoder with random-resized-crop + flip): every epoch re-encodes the train images, augmented as
  fine-tuning augments them, with the frozen encoder in eval mode; val and test are encoded with the
  encoder's own preprocessing. One encoder pass per batch serves every head (hours on a GPU for ImageNet).
`epoch_length` caps the steps of an epoch (DINOv2's option of that name), for a budgeted run.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from benchmark.errors import UserError
from benchmark.metrics import correct_per_example, score
from benchmark.outputs import PerExample
from benchmark.params import Boolean, CheckedParams, Constraints, Each, Interval, Optional
from benchmark.protocols import PROTOCOLS
from benchmark.protocols._finetune_data import TrainingBatches, on_device, training_loader
from benchmark.protocols._linear_sweep import first_strict_best
from benchmark.protocols.base import (Features, FeatureTask, ModelTask, Protocol, ProtocolResult, Rows, check_finite,
                                     require_test_split)
from benchmark.vocab import EncoderWork, FeatureKind, TaskType

PREDICTION_BATCH = 4096  # rows scored at once when predicting (bounded memory on any split size)
IMAGE_BATCH = 128  # images encoded at once when predicting in augment mode

@dataclass(frozen=True)
class LinearSGDParams(CheckedParams):
    lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)  # per 256 examples
    weight_decays: tuple[float, ...] = (0.0,)
    epochs: int = 10
    batch_size: int = 256
    momentum: float = 0.9
    seed: int = 0
    augment: bool = False  # re-encode augmented train images every epoch (the SSL papers' recipe)
    epoch_length: int | None = None  # steps per epoch (DINOv2's epoch_length); None: one pass over the data
    constraints: ClassVar[Constraints] = {
        "lrs": Each(Interval(float, 0, 1e4, open_low=True)), "weight_decays": Each(Interval(float, 0, 1)),
        "epochs": Interval(int, 1, 10_000), "batch_size": Interval(int, 1, 1 << 20),
        "momentum": Interval(float, 0, 0.999), "seed": Interval(int, 0), "augment": Boolean(),
        "epoch_length": Optional(Interval(int, 1))}
    added_later: ClassVar[tuple[str, ...]] = ("augment", "epoch_length")

    def grid(self) -> list[tuple[float, float]]:
        """The heads' (lr, wd) pairs, learning rates outermost."""
        return [(lr, wd) for lr in self.lrs for wd in self.weight_decays]

    def steps_per_epoch(self, rows: int) -> int:
        return min(math.ceil(rows / self.batch_size), self.epoch_length or math.inf)


class RowBatches:
    """Batches of rows of one or more splits (train, or train and val) in a seeded order per epoch,
    gathered from their arrays (memory-mapped cache files stay on disk) and sent to the device; on a GPU
    through page-locked memory without blocking, so the copy overlaps the previous step."""

    def __init__(self, parts: list[Features], batch_size: int, device: str, epoch_length: int | None = None):
        self.x, self.y = Rows([part.x for part in parts]), np.concatenate([part.y for part in parts])
        self.batch_size, self.device, self.epoch_length = batch_size, device, epoch_length
        self.pin = torch.device(device).type == "cuda"

    def __len__(self) -> int:
        return len(self.y)

    def steps_per_epoch(self) -> int:
        return min(math.ceil(len(self) / self.batch_size), self.epoch_length or math.inf)

    def epoch(self, seed: int, epoch: int):
        order = np.random.default_rng([seed, epoch]).permutation(len(self))
        for step in range(self.steps_per_epoch()):
            yield self.gather(np.sort(order[step * self.batch_size:(step + 1) * self.batch_size]))

    def gather(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        with warnings.catch_warnings():  # cached features are read-only arrays; a batch is a copy
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            x = torch.from_numpy(np.asarray(self.x[rows], dtype=np.float32))
        y = torch.from_numpy(np.asarray(self.y[rows], dtype=np.int64))
        if self.pin:
            x, y = x.pin_memory(), y.pin_memory()
        return x.to(self.device, non_blocking=self.pin), y.to(self.device, non_blocking=self.pin)


@dataclass
class Heads:
    """H linear heads over D features and K classes, trained together: weight (H, K, D), bias (H, K)."""

    weight: torch.Tensor
    bias: torch.Tensor
    lrs: torch.Tensor  # (H,) base learning rates, already scaled by batch_size / 256
    decays: torch.Tensor  # (H,)

    @classmethod
    def zeros(cls, grid: list[tuple[float, float]], dim: int, classes: int, batch_size: int, device: str) -> Heads:
        lrs = torch.tensor([lr * batch_size / 256 for lr, _ in grid], device=device)
        decays = torch.tensor([wd for _, wd in grid], device=device)
        return cls(torch.zeros(len(grid), classes, dim, device=device), torch.zeros(len(grid), classes, device=device),
                   lrs, decays)

    def finite(self) -> list[bool]:
        """Per head: whether its weights and bias are all finite (a too-large learning rate diverges)."""
        return (self.weight.isfinite().flatten(1).all(1) & self.bias.isfinite().all(1)).tolist()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, K) logits of every head, in one GEMM."""
        heads, classes, dim = self.weight.shape
        return (x @ self.weight.reshape(heads * classes, dim).T).reshape(len(x), heads, classes) + self.bias

    def gradients(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradients of each head's mean cross-entropy plus wd / 2 ||W||^2."""
        residual = torch.softmax(self.logits(x), 2)
        residual[torch.arange(len(y), device=y.device), :, y] -= 1.0
        residual /= len(y)
        heads, classes, dim = self.weight.shape
        weight_grad = (residual.reshape(len(y), heads * classes).T @ x).reshape(heads, classes, dim)
        return weight_grad + self.decays[:, None, None] * self.weight, residual.sum(0)

def cosine(step: int, total: int) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * step / total))

def train_heads(heads: Heads, batches: RowBatches | AugmentedImages, epochs: int, momentum: float, seed: int
                ) -> Heads:
    """SGD with momentum over `epochs` passes, every head at its own learning rate times the cosine schedule."""
    velocity_w, velocity_b = torch.zeros_like(heads.weight), torch.zeros_like(heads.bias)
    total, step = epochs * batches.steps_per_epoch(), 0
    for epoch in range(epochs):
        for x, y in batches.epoch(seed, epoch):
            weight_grad, bias_grad = heads.gradients(x, y)
            velocity_w.mul_(momentum).add_(weight_grad)
            velocity_b.mul_(momentum).add_(bias_grad)
            rate = heads.lrs * cosine(step, total)
            heads.weight -= rate[:, None, None] * velocity_w
            heads.bias -= rate[:, None] * velocity_b
            step += 1
    return heads

class CachedInputs:
    """Input mode `features`: the cached features, streamed in batches (DINOv2's linear evaluation)."""

    mode = "features"

    def __init__(self, data: FeatureTask, params: LinearSGDParams):
        self.data, self.params = data, params

    def batches(self, parts: list[Features]) -> RowBatches:
        return RowBatches(parts, self.params.batch_size, self.data.device, self.params.epoch_length)

    def feature_batches(self, split: Features):
        """The split's features in order, PREDICTION_BATCH rows at a time, on the device."""
        batches = RowBatches([split], PREDICTION_BATCH, self.data.device)
        for start in range(0, len(split), PREDICTION_BATCH):
            yield batches.gather(np.arange(start, min(start + PREDICTION_BATCH, len(split))))[0]


class AugmentedImages:
    """One epoch after another of random-resized-crop + flip train images (fine-tuning's augmentation, made
    in DataLoader workers), each batch encoded by the frozen encoder: (features, labels) on the device."""

    def __init__(self, data: ModelTask, parts: list[Features], params: LinearSGDParams):
        self.data, self.params = data, params
        self.indices = np.concatenate([np.asarray(part.x) for part in parts])
        self.y = torch.as_tensor(np.concatenate([np.asarray(part.y) for part in parts]), device=data.device)

    def steps_per_epoch(self) -> int:
        return self.params.steps_per_epoch(len(self.indices))

    def epoch(self, seed: int, epoch: int):
        p, data = self.params, self.data
        batches = TrainingBatches.one_epoch(data.images, self.indices, p.batch_size, data.preprocessing, seed, epoch,
                                            self.steps_per_epoch())
        for rows, crops in training_loader(batches, data.workers, pin=data.device.startswith("cuda")):
            yield data.encoder.encode(on_device(crops, data.preprocessing, data.device)), self.y[rows.to(self.y.device)]


class AugmentedInputs:
    """Input mode `augment`: the SSL papers' recipe. Train images are re-encoded every epoch with fine-tuning's
    augmentation; val and test images are encoded once per prediction with the encoder's own preprocessing
    (what the feature cache holds). The encoder stays frozen and in eval mode (batch norm's running stats)."""

    mode = "augment"

    def __init__(self, data: ModelTask, params: LinearSGDParams):
        self.data, self.params = data, params
        data.encoder.to(data.device)

    def batches(self, parts: list[Features]) -> AugmentedImages:
        return AugmentedImages(self.data, parts, self.params)

    def feature_batches(self, split: Features):
        data, transform = self.data, self.data.preprocessing.transform()
        indices = np.asarray(split.x)
        for start in range(0, len(indices), IMAGE_BATCH):
            images = torch.stack([transform(data.images.image_tensor(int(i))) for i in indices[start:start + IMAGE_BATCH]])
            yield data.encoder.encode(images.to(data.device))


def head_predictions(heads: Heads, inputs: CachedInputs | AugmentedInputs, split: Features,
                     classes: tuple[int, ...] = ()) -> np.ndarray:
    """(N, H) class predicted by every head on a split, batch by batch (never the (N, H, K) logits: ImageNet's
    held-out val x 10 heads x 1000 classes would be 10 GB); among `classes` only, when given."""
    with torch.no_grad():
        parts = [among(heads.logits(x), classes).argmax(2).cpu() for x in inputs.feature_batches(split)]
    return torch.cat(parts).numpy() if parts else np.zeros((0, len(heads.lrs)), dtype=np.int64)


def among(logits: torch.Tensor, classes: tuple[int, ...]) -> torch.Tensor:
    """Logits (..., K) with the classes outside `classes` at -inf (none changed when it is empty)."""
    if not classes:
        return logits
    outside = torch.ones(logits.shape[-1], dtype=torch.bool, device=logits.device)
    outside[list(classes)] = False
    return logits.masked_fill(outside, float("-inf"))


@PROTOCOLS.register
class LinearSGD(Protocol):
    name = "linear_sgd"
    version = "1.0"
    Params = LinearSGDParams
    tasks = (TaskType.MULTICLASS,)
    selects_on_val = True
    restricts_classes = True

    def __init__(self, **params):
        super().__init__(**params)
        if self.params.augment:  # it runs the encoder on images: the runner hands it the model, not features
            self.requires = (FeatureKind.MODEL,)

    def encoder_work(self) -> EncoderWork:
        return EncoderWork.FORWARD if self.params.augment else EncoderWork.FEATURES

    def evaluate(self, data: FeatureTask | ModelTask) -> ProtocolResult:
        require_test_split(data, self.name)
        p, grid = self.params, self.params.grid()
        if not p.augment:
            check_finite(data)
        inputs = AugmentedInputs(data, p) if p.augment else CachedInputs(data, p)
        heads = train_heads(self.fresh_heads(data, grid), inputs.batches([data.train]), p.epochs, p.momentum, p.seed)
        val_predictions, finite = head_predictions(heads, inputs, data.val), heads.finite()
        val_scores = [score(data.metric, data.val.y, val_predictions[:, h]) if finite[h] else float("nan")
                      for h in range(len(grid))]  # a diverged head never wins (NaN)
        if not any(finite):
            raise UserError(f"linear_sgd: every head diverged (non-finite weights) at learning rates {list(p.lrs)}; "
                            f"lower `lrs`")
        best = first_strict_best(val_scores)
        final = train_heads(self.fresh_heads(data, [grid[best]]), inputs.batches([data.train, data.val]), p.epochs,
                            p.momentum, p.seed)
        if not final.finite()[0]:
            raise UserError(f"linear_sgd: the train+val retrain at lr {grid[best][0]} diverged (non-finite weights); "
                            f"lower `lrs`")
        outputs = head_predictions(final, inputs, data.test, data.test_classes)[:, 0]
        lr, wd = grid[best]
        return ProtocolResult(
            value=score(data.metric, data.test.y, outputs), metric=data.metric, chosen={"lr": lr, "wd": wd},
            details={"val_score": val_scores[best], "val_scores": val_scores, "grid": [list(g) for g in grid],
                     "input": inputs.mode, "epochs": p.epochs, "steps": p.epochs * p.steps_per_epoch(len(data.train))},
            per_example=PerExample(correct_per_example(data.metric, data.test.y, outputs)))

    def fresh_heads(self, data: FeatureTask | ModelTask, grid: list[tuple[float, float]]) -> Heads:
        dim = self.feature_width(data) if self.params.augment else data.train.x.shape[1]
        return Heads.zeros(grid, dim, data.num_classes, self.params.batch_size, data.device)

    @staticmethod
    def feature_width(data: ModelTask) -> int:
        """The encoder's feature width, from one image through it."""
        image = data.preprocessing.transform()(data.images.image_tensor(int(np.asarray(data.train.x)[0])))
        return data.encoder.to(data.device).encode(image[None].to(data.device)).shape[1]
