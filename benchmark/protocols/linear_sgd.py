"""A linear probe for data too large for a full-batch solver: many heads trained by mini-batch SGD in one
pass over the features per epoch, as DINOv2's linear evaluation trains its grid (ImageNet's 1.28M x 2048
float32 features are 10.5 GB; the full-batch solvers would copy them to float64 and run on the CPU).

Every (learning rate, weight decay) pair of the grid is one head; one epoch reads each train row once, in
a seeded order, in batches gathered straight from the (memory-mapped) feature cache, so memory holds one
batch, not the features. Each step computes all heads' logits with one GEMM and updates each head with SGD
(momentum 0.9) at its own learning rate, scaled by batch_size / 256 and annealed by a cosine schedule. The
head with the first strictly best validation score (the linear protocol's rule, in grid order) is chosen;
as the linear protocol refits on train+val at its chosen C, its (lr, wd) is retrained on train+val and
scores the test split. Input mode `features` (the cached features, as DINOv2): re-encoding augmented
images every epoch, the SSL papers' recipe, is not built.
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
from benchmark.params import CheckedParams, Constraints, Each, Interval
from benchmark.protocols import PROTOCOLS
from benchmark.protocols._linear_sweep import first_strict_best
from benchmark.protocols.base import (Features, FeatureTask, Protocol, ProtocolResult, Rows, check_finite,
                                     require_test_split)
from benchmark.vocab import TaskType

PREDICTION_BATCH = 4096  # rows scored at once when predicting (bounded memory on any split size)

@dataclass(frozen=True)
class LinearSGDParams(CheckedParams):
    lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)  # per 256 examples
    weight_decays: tuple[float, ...] = (0.0,)
    epochs: int = 10
    batch_size: int = 256
    momentum: float = 0.9
    seed: int = 0
    constraints: ClassVar[Constraints] = {
        "lrs": Each(Interval(float, 0, 1e4, open_low=True)), "weight_decays": Each(Interval(float, 0, 1)),
        "epochs": Interval(int, 1, 10_000), "batch_size": Interval(int, 1, 1 << 20),
        "momentum": Interval(float, 0, 0.999), "seed": Interval(int, 0)}

    def grid(self) -> list[tuple[float, float]]:
        """The heads' (lr, wd) pairs, learning rates outermost."""
        return [(lr, wd) for lr in self.lrs for wd in self.weight_decays]

class RowBatches:
    """Batches of rows of one or more splits (train, or train and val) in a seeded order per epoch,
    gathered from their arrays (memory-mapped cache files stay on disk) and sent to the device; on a GPU
    through page-locked memory without blocking, so the copy overlaps the previous step."""

    def __init__(self, parts: list[Features], batch_size: int, device: str):
        self.x, self.y = Rows([part.x for part in parts]), np.concatenate([part.y for part in parts])
        self.batch_size, self.device = batch_size, device
        self.pin = torch.device(device).type == "cuda"

    def __len__(self) -> int:
        return len(self.y)

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self) / self.batch_size)

    def epoch(self, seed: int, epoch: int):
        order = np.random.default_rng([seed, epoch]).permutation(len(self))
        for start in range(0, len(order), self.batch_size):
            yield self.gather(np.sort(order[start:start + self.batch_size]))

    def gather(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
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

def train_heads(heads: Heads, batches: RowBatches, epochs: int, momentum: float, seed: int) -> Heads:
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

def head_logits(heads: Heads, split: Features, device: str) -> np.ndarray:
    """(N, H, K) float32 logits of every head on a split, computed batch by batch."""
    batches = RowBatches([split], PREDICTION_BATCH, device)
    with torch.no_grad():
        parts = [heads.logits(batches.gather(np.arange(start, min(start + PREDICTION_BATCH, len(split))))[0]).cpu()
                 for start in range(0, len(split), PREDICTION_BATCH)]
    return torch.cat(parts).numpy()

@PROTOCOLS.register
class LinearSGD(Protocol):
    name = "linear_sgd"
    version = "1.0"
    Params = LinearSGDParams
    tasks = (TaskType.MULTICLASS,)
    selects_on_val = True

    def evaluate(self, data: FeatureTask) -> ProtocolResult:
        require_test_split(data, self.name)
        check_finite(data)
        p, grid = self.params, self.params.grid()
        heads = self.trained(data, [data.train], grid)
        val_logits = head_logits(heads, data.val, data.device)
        finite = heads.finite()
        val_scores = [score(data.metric, data.val.y, val_logits[:, h]) if finite[h] else float("nan")
                      for h in range(len(grid))]  # a diverged head never wins (NaN)
        if not any(finite):
            raise UserError(f"linear_sgd: every head diverged (non-finite weights) at learning rates {list(p.lrs)}; "
                            f"lower `lrs`")
        best = first_strict_best(val_scores)
        final = self.trained(data, [data.train, data.val], [grid[best]])
        if not final.finite()[0]:
            raise UserError(f"linear_sgd: the train+val retrain at lr {grid[best][0]} diverged (non-finite weights); "
                            f"lower `lrs`")
        outputs = head_logits(final, data.test, data.device)[:, 0]
        lr, wd = grid[best]
        return ProtocolResult(
            value=score(data.metric, data.test.y, outputs), metric=data.metric, chosen={"lr": lr, "wd": wd},
            details={"val_score": val_scores[best], "val_scores": val_scores, "grid": [list(g) for g in grid],
                     "input": "features", "steps": p.epochs * math.ceil(len(data.train) / p.batch_size)},
            per_example=PerExample(correct_per_example(data.metric, data.test.y, outputs)))

    def trained(self, data: FeatureTask, parts: list[Features], grid: list[tuple[float, float]]) -> Heads:
        p = self.params
        heads = Heads.zeros(grid, data.train.x.shape[1], data.num_classes, p.batch_size, data.device)
        with warnings.catch_warnings():  # cached features are read-only arrays; batches are copies
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return train_heads(heads, RowBatches(parts, p.batch_size, data.device), p.epochs, p.momentum, p.seed)
