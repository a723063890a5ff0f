"""RotNet (Gidaris et al., ICLR 2018): predict which of 0/90/180/270 degrees an image was rotated by.

Each image gets one rotation drawn at random (the paper feeds all four; one per image keeps the
cost per step equal to the other methods').
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.training import METHODS
from benchmark.training.base import Method, MethodContext


def rotate_batch(images: torch.Tensor, quarter_turns: torch.Tensor) -> torch.Tensor:
    """Rotate image i by quarter_turns[i] * 90 degrees (counter-clockwise)."""
    rotated = images.clone()
    for k in range(1, 4):
        chosen = quarter_turns == k
        rotated[chosen] = torch.rot90(images[chosen], k, dims=(2, 3))
    return rotated


@METHODS.register
class Rotation(Method):
    name = "rotation"

    def __init__(self, backbone: nn.Module, context: MethodContext, **params):
        super().__init__(backbone, context, **params)
        self.head = nn.Linear(context.feature_dim, 4)

    def views(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        (view,) = super().views(images, generator)
        turns = torch.randint(4, (len(view),), generator=generator)
        return [rotate_batch(view, turns), turns]

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        rotated, turns = views
        return F.cross_entropy(self.head(self.backbone(rotated)), turns)
