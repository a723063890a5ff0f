"""Supervised pretraining: cross-entropy on the labels through a linear head (every table's baseline)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.training import METHODS
from benchmark.training.base import Method, MethodContext


@METHODS.register
class Supervised(Method):
    name = "supervised"
    uses_labels = True

    def __init__(self, backbone: nn.Module, context: MethodContext, **params):
        super().__init__(backbone, context, **params)
        self.head = nn.Linear(context.feature_dim, context.num_classes)

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.head(self.backbone(views[0])), labels)
