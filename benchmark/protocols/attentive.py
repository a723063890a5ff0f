"""Attentive probing: a learned query cross-attends over an image's frozen patch tokens, and a linear
classifier reads the result (V-JEPA's and AIM's attentive probe, eva's attention-MIL pooling).

Why: a linear probe reads one pooled vector, the class token or the mean of the patch tokens. A ViT
whose class token pools poorly (MAE) looks weak there although its patch tokens hold the answer; an
attentive probe lets the head choose which tokens to read, and ranks such encoders differently.

The head: LayerNorm over the tokens (the cached dense features, as the segmentation probe reads them: a
ViT's patch tokens, or a CNN's deepest stride-16 stage, one token per position), `queries` learned
queries attending with `heads` heads
(torch's MultiheadAttention), the attended vectors concatenated into a linear classifier. Each (lr, wd)
of the grid trains its own head with AdamW on a cosine schedule over `epochs`, batches drawn in a seeded
order; the first strictly best on validation is chosen (the linear protocol's rule), retrained on
train+val, and scored on test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import UserError
from benchmark.metrics import correct_per_example, score
from benchmark.outputs import PerExample
from benchmark.params import CheckedParams, Constraints, Each, Interval
from benchmark.protocols import PROTOCOLS
from benchmark.protocols._linear_sweep import first_strict_best
from benchmark.protocols.base import (Features, FeatureTask, Protocol, ProtocolResult, Rows, check_finite,
                                     require_test_split)
from benchmark.seeding import seeded_init
from benchmark.vocab import FeatureKind, TaskType

PREDICTION_BATCH = 256


@dataclass(frozen=True)
class AttentiveParams(CheckedParams):
    lrs: tuple[float, ...] = (1e-4, 1e-3, 1e-2)  # AdamW
    weight_decays: tuple[float, ...] = (1e-4, 1e-2)
    queries: int = 1
    heads: int = 1
    epochs: int = 20
    batch_size: int = 64
    seed: int = 0
    constraints: ClassVar[Constraints] = {
        "lrs": Each(Interval(float, 0, 1, open_low=True)), "weight_decays": Each(Interval(float, 0, 10)),
        "queries": Interval(int, 1, 64), "heads": Interval(int, 1, 64), "epochs": Interval(int, 1, 10_000),
        "batch_size": Interval(int, 1, 1 << 16), "seed": Interval(int, 0)}

    def grid(self) -> list[tuple[float, float]]:
        return [(lr, wd) for lr in self.lrs for wd in self.weight_decays]


class AttentiveHead(nn.Module):
    """(B, T, D) tokens -> (B, classes) logits through `queries` learned queries' cross-attention."""

    def __init__(self, dim: int, classes: int, queries: int, heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.query = nn.Parameter(torch.randn(queries, dim) * 0.02)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.classifier = nn.Linear(queries * dim, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        keys = self.norm(tokens)
        pooled, _ = self.attention(self.query.expand(len(tokens), -1, -1), keys, keys, need_weights=False)
        return self.classifier(pooled.flatten(1))


def tokens(maps: np.ndarray, device: str) -> torch.Tensor:
    """Dense maps (B, C, h, w) as a float32 token batch (B, h*w, C) on the device."""
    batch = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32)).to(device)
    return batch.flatten(2).transpose(1, 2)


@PROTOCOLS.register
class AttentiveProbe(Protocol):
    name = "attentive"
    version = "1.0"
    requires = (FeatureKind.DENSE,)
    tasks = (TaskType.MULTICLASS,)
    selects_on_val = True
    Params = AttentiveParams

    def evaluate(self, data: FeatureTask) -> ProtocolResult:
        require_test_split(data, self.name)
        check_finite(data)
        dim = data.train.x.shape[1]
        if dim % self.params.heads:
            raise UserError(f"attentive: heads={self.params.heads} must divide the features' {dim} channels; "
                            f"choose heads from {[h for h in (1, 2, 4, 8, 12, 16) if dim % h == 0]}")
        grid = self.params.grid()
        val_scores = [score(data.metric, data.val.y, self.predict(self.train(data, [data.train], lr, wd), data.val,
                                                                   data.device))
                      for lr, wd in grid]
        best = first_strict_best(val_scores)
        final = self.train(data, [data.train, data.val], *grid[best])
        outputs = self.predict(final, data.test, data.device)
        return ProtocolResult(
            value=score(data.metric, data.test.y, outputs), metric=data.metric,
            chosen={"lr": grid[best][0], "wd": grid[best][1]},
            details={"val_score": val_scores[best], "val_scores": val_scores, "grid": [list(g) for g in grid],
                     "tokens": int(np.prod(data.train.x.shape[2:])), "epochs": self.params.epochs},
            per_example=PerExample(correct_per_example(data.metric, data.test.y, outputs)))

    def train(self, data: FeatureTask, parts: list[Features], lr: float, weight_decay: float) -> AttentiveHead:
        """One head trained by AdamW on the splits' tokens, batches gathered from the (mapped) cache."""
        p, x = self.params, Rows([part.x for part in parts])
        y = torch.as_tensor(np.concatenate([part.y for part in parts]).astype(np.int64), device=data.device)
        head = seeded_init(lambda: AttentiveHead(x.shape[1], data.num_classes, p.queries, p.heads), p.seed)
        head.to(data.device).train()
        optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
        steps = p.epochs * math.ceil(len(x) / p.batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        order = torch.Generator().manual_seed(p.seed)
        for _ in range(p.epochs):
            for rows in torch.randperm(len(x), generator=order).split(p.batch_size):
                rows = np.sort(rows.numpy())
                loss = F.cross_entropy(head(tokens(x[rows], data.device)), y[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
        return head.eval()

    @staticmethod
    def predict(head: AttentiveHead, split: Features, device: str) -> np.ndarray:
        """Each example's predicted class (a diverged head's NaN logits predict class 0)."""
        with torch.no_grad():
            parts = [head(tokens(split.x[i:i + PREDICTION_BATCH], device)).nan_to_num(0.0).argmax(1).cpu()
                     for i in range(0, len(split), PREDICTION_BATCH)]
        return torch.cat(parts).numpy() if parts else np.zeros(0, dtype=np.int64)
