"""SimSiam (Chen & He, CVPR 2021): a Siamese network with a predictor and a stop-gradient on the
other branch, D = negative cosine, symmetrised: L = D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2."""

from __future__ import annotations

from typing import ClassVar

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.params import CheckedParams, Constraints, Interval
from benchmark.training import METHODS
from benchmark.training.augment import ViewSpec, simclr_view
from benchmark.training.base import Method, MethodContext, mlp


def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    d = lambda p, z: -F.cosine_similarity(p, z.detach(), dim=1).mean()  # noqa: E731
    return d(p1, z2) / 2 + d(p2, z1) / 2


@METHODS.register
class SimSiam(Method):
    name = "simsiam"

    @dataclass(frozen=True)
    class Params(CheckedParams):
        projection_dim: int = 512
        predictor_dim: int = 128  # the bottleneck: a quarter of the projection, as in the paper
        constraints: ClassVar[Constraints] = {"projection_dim": Interval(int, 1), "predictor_dim": Interval(int, 1)}

    def __init__(self, backbone: nn.Module, context: MethodContext, **params):
        super().__init__(backbone, context, **params)
        p = self.params
        self.projector = mlp(context.feature_dim, p.projection_dim, p.projection_dim, layers=3, last_bn=True)
        self.predictor = mlp(p.projection_dim, p.predictor_dim, p.projection_dim)

    def view_specs(self) -> list[ViewSpec]:
        return [simclr_view(self.context.input_size)] * 2

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        z1, z2 = self.projector(self.backbone(torch.cat(views))).chunk(2)
        return simsiam_loss(self.predictor(z1), self.predictor(z2), z1, z2)
