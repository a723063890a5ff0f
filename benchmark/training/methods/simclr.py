"""SimCLR (Chen et al., ICML 2020): NT-Xent over the 2N views of a batch, cosine similarity over
temperature, through an MLP projection head; SimCLR's crop, flip, colour jitter, grayscale, blur."""

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


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Each of the 2N views must pick its partner among the other 2N - 1 (mean over all 2N)."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    similarity = z @ z.T / temperature
    similarity.fill_diagonal_(float("-inf"))
    n = len(z1)
    partners = torch.cat([torch.arange(n, 2 * n, device=z.device), torch.arange(n, device=z.device)])
    return F.cross_entropy(similarity, partners)


@METHODS.register
class SimCLR(Method):
    name = "simclr"

    @dataclass(frozen=True)
    class Params(CheckedParams):
        temperature: float = 0.2
        projection_dim: int = 128
        hidden_dim: int = 512
        constraints: ClassVar[Constraints] = {
            "temperature": Interval(float, 0, open_low=True), "projection_dim": Interval(int, 1),
            "hidden_dim": Interval(int, 1)}

    def __init__(self, backbone: nn.Module, context: MethodContext, **params):
        super().__init__(backbone, context, **params)
        self.projector = mlp(context.feature_dim, self.params.hidden_dim, self.params.projection_dim)

    def view_specs(self) -> list[ViewSpec]:
        return [simclr_view(self.context.input_size)] * 2

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        z1, z2 = self.projector(self.backbone(torch.cat(views))).chunk(2)
        return nt_xent(z1, z2, self.params.temperature)
