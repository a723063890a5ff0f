"""SwAV (Caron et al., NeurIPS 2020): codes from Sinkhorn-Knopp equipartition of the prototype scores
of each global crop, predicted from every other crop (swapped prediction); multi-crop views:
2 global crops (scale 0.14-1) and small local crops (scale 0.05-0.14, half the side)."""

from __future__ import annotations

from typing import ClassVar

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.params import CheckedParams, Constraints, Interval
from benchmark.training import METHODS
from benchmark.training.augment import ViewSpec, encode_crops, multi_crop
from benchmark.training.base import Method, MethodContext, mlp


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Soft codes (B, K): exp(scores / eps) rescaled so prototypes share the batch equally and each
    sample's codes sum to 1."""
    q = torch.exp(scores / epsilon).T  # (K, B)
    q /= q.sum()
    k, b = q.shape
    for _ in range(iterations):
        q /= q.sum(dim=1, keepdim=True) * k
        q /= q.sum(dim=0, keepdim=True) * b
    return (q * b).T


def swav_loss(scores: list[torch.Tensor], temperature: float, epsilon: float = 0.05,
              iterations: int = 3) -> torch.Tensor:
    """scores[v]: prototype scores of view v (the first two are the global crops)."""
    total = 0.0
    for i in range(2):
        codes = sinkhorn(scores[i].detach(), epsilon, iterations)
        others = [v for v in range(len(scores)) if v != i]
        total += sum(-(codes * F.log_softmax(scores[v] / temperature, dim=1)).sum(1).mean() for v in others) / len(others)
    return total / 2


@METHODS.register
class SwAV(Method):
    name = "swav"

    @dataclass(frozen=True)
    class Params(CheckedParams):
        prototypes: int = 100
        temperature: float = 0.1
        epsilon: float = 0.05
        sinkhorn_iterations: int = 3
        local_crops: int = 4
        projection_dim: int = 128
        hidden_dim: int = 512
        constraints: ClassVar[Constraints] = {
            "prototypes": Interval(int, 1), "temperature": Interval(float, 0, open_low=True),
            "epsilon": Interval(float, 0, open_low=True), "sinkhorn_iterations": Interval(int, 1),
            "local_crops": Interval(int, 0), "projection_dim": Interval(int, 1), "hidden_dim": Interval(int, 1)}

    def __init__(self, backbone: nn.Module, context: MethodContext, **params):
        super().__init__(backbone, context, **params)
        p = self.params
        self.projector = nn.Sequential(backbone, mlp(context.feature_dim, p.hidden_dim, p.projection_dim))
        self.prototypes = nn.Linear(p.projection_dim, p.prototypes, bias=False)

    def view_specs(self) -> list[ViewSpec]:
        return multi_crop(self.context.input_size, self.params.local_crops)

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # prototypes stay on the unit sphere
            self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
        scores = [self.prototypes(F.normalize(z, dim=1)) for z in encode_crops(self.projector, views)]
        p = self.params
        return swav_loss(scores, p.temperature, p.epsilon, p.sinkhorn_iterations)
