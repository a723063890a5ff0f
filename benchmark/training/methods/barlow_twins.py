"""Barlow Twins (Zbontar et al., ICML 2021): push the cross-correlation matrix of the two views'
batch-standardised embeddings to the identity: sum_i (1 - C_ii)^2 + lambda sum_{i!=j} C_ij^2."""

from __future__ import annotations

from typing import ClassVar

from dataclasses import dataclass

import torch
from torch import nn

from benchmark.params import CheckedParams, Constraints, Interval
from benchmark.training import METHODS
from benchmark.training.augment import ViewSpec, simclr_view
from benchmark.training.base import Method, MethodContext, mlp, off_diagonal


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, off_diagonal_weight: float) -> torch.Tensor:
    standardise = lambda z: (z - z.mean(0)) / z.std(0, unbiased=False).clamp_min(1e-6)  # noqa: E731
    c = standardise(z1).T @ standardise(z2) / len(z1)
    return (torch.diagonal(c) - 1).pow(2).sum() + off_diagonal_weight * off_diagonal(c).pow(2).sum()


@METHODS.register
class BarlowTwins(Method):
    name = "barlow_twins"

    @dataclass(frozen=True)
    class Params(CheckedParams):
        off_diagonal_weight: float = 0.0051
        projection_dim: int = 1024
        constraints: ClassVar[Constraints] = {
            "off_diagonal_weight": Interval(float, 0), "projection_dim": Interval(int, 1)}

    def __init__(self, backbone: nn.Module, context: MethodContext, **params):
        super().__init__(backbone, context, **params)
        dim = self.params.projection_dim
        self.projector = mlp(context.feature_dim, dim, dim, layers=3)

    def view_specs(self) -> list[ViewSpec]:
        return [simclr_view(self.context.input_size)] * 2

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        z1, z2 = self.projector(self.backbone(torch.cat(views))).chunk(2)
        return barlow_twins_loss(z1, z2, self.params.off_diagonal_weight)
