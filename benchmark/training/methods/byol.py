"""BYOL (Grill et al., NeurIPS 2020): an online network with a predictor regresses the projection of
an EMA target network; no negatives. Loss 2 - 2 cos, symmetrised; target momentum rises from 0.996
to 1 along a cosine; asymmetric views (blur 1.0 / 0.1, solarise 0 / 0.2)."""

from __future__ import annotations

from typing import ClassVar

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.params import CheckedParams, Constraints, Interval
from benchmark.training import METHODS
from benchmark.training.augment import ViewSpec, simclr_view
from benchmark.training.base import Method, MethodContext, cosine_momentum, ema_update, frozen_copy, mlp


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z); z carries no gradient."""
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=1)).mean()


@METHODS.register
class BYOL(Method):
    name = "byol"

    @dataclass(frozen=True)
    class Params(CheckedParams):
        base_momentum: float = 0.996
        projection_dim: int = 128
        hidden_dim: int = 512
        constraints: ClassVar[Constraints] = {
            "base_momentum": Interval(float, 0, 1), "projection_dim": Interval(int, 1),
            "hidden_dim": Interval(int, 1)}

    def __init__(self, backbone: nn.Module, context: MethodContext, **params):
        super().__init__(backbone, context, **params)
        p = self.params
        self.online = nn.Sequential(backbone, mlp(context.feature_dim, p.hidden_dim, p.projection_dim))
        self.predictor = mlp(p.projection_dim, p.hidden_dim, p.projection_dim)
        self.target = frozen_copy(self.online)

    def view_specs(self) -> list[ViewSpec]:
        size = self.context.input_size
        return [simclr_view(size, blur=1.0), simclr_view(size, blur=0.1, solarize=0.2)]

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        p1, p2 = self.predictor(self.online(torch.cat(views))).chunk(2)
        with torch.no_grad():
            z1, z2 = self.target(torch.cat(views)).chunk(2)
        return byol_loss(p1, z2) + byol_loss(p2, z1)

    def after_step(self, progress: float) -> None:
        ema_update(self.target, self.online, cosine_momentum(self.params.base_momentum, progress))
