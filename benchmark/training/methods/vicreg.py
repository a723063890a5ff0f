"""VICReg (Bardes et al., ICLR 2022): invariance (MSE between views), variance (hinge on each
dimension's std at 1) and covariance (squared off-diagonal covariances / d) terms, weighted 25/25/1,
as the paper's Algorithm 1 writes them (its released code halves the variance term)."""

from __future__ import annotations

from typing import ClassVar

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.params import CheckedParams, Constraints, Interval
from benchmark.training import METHODS
from benchmark.training.augment import ViewSpec, simclr_view
from benchmark.training.base import Method, MethodContext, mlp, off_diagonal


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, invariance: float = 25.0, variance: float = 25.0,
                covariance: float = 1.0) -> torch.Tensor:
    n, d = z1.shape
    invariance_term = F.mse_loss(z1, z2)
    z1, z2 = z1 - z1.mean(0), z2 - z2.mean(0)
    std_term = sum(F.relu(1 - torch.sqrt(z.var(0) + 1e-4)).mean() for z in (z1, z2))  # Alg. 1 (the code halves it)
    cov_term = sum(off_diagonal(z.T @ z / (n - 1)).pow(2).sum() / d for z in (z1, z2))
    return invariance * invariance_term + variance * std_term + covariance * cov_term


@METHODS.register
class VICReg(Method):
    name = "vicreg"

    @dataclass(frozen=True)
    class Params(CheckedParams):
        invariance: float = 25.0
        variance: float = 25.0
        covariance: float = 1.0
        expander_dim: int = 1024
        constraints: ClassVar[Constraints] = {
            "invariance": Interval(float, 0), "variance": Interval(float, 0), "covariance": Interval(float, 0),
            "expander_dim": Interval(int, 1)}

    def __init__(self, backbone: nn.Module, context: MethodContext, **params):
        super().__init__(backbone, context, **params)
        dim = self.params.expander_dim
        self.expander = mlp(context.feature_dim, dim, dim, layers=3)

    def view_specs(self) -> list[ViewSpec]:
        return [simclr_view(self.context.input_size)] * 2

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        z1, z2 = self.expander(self.backbone(torch.cat(views))).chunk(2)
        p = self.params
        return vicreg_loss(z1, z2, p.invariance, p.variance, p.covariance)
