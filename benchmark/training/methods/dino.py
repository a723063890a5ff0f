"""DINO (Caron et al., ICCV 2021): self-distillation with no labels. A student matches an EMA
teacher's centred, sharpened softmax over K output dimensions; the teacher sees the 2 global crops,
the student every crop; the centre is an EMA of teacher outputs (momentum 0.9); teacher
temperature 0.04, student 0.1; teacher momentum rises from 0.996 to 1 along a cosine."""

from __future__ import annotations

from typing import ClassVar

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.params import CheckedParams, Constraints, Interval
from benchmark.training import METHODS
from benchmark.training.augment import ViewSpec, encode_crops, multi_crop
from benchmark.training.base import Method, MethodContext, cosine_momentum, ema_update, frozen_copy


class DINOHead(nn.Module):
    """MLP (GELU) to a bottleneck, L2-normalised, then a weight-normalised linear layer (norm fixed at 1)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 512, bottleneck: int = 128):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, bottleneck))
        self.last = nn.Linear(bottleneck, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(self.mlp(x), dim=1), F.normalize(self.last.weight, dim=1))


def dino_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], center: torch.Tensor,
              student_temperature: float, teacher_temperature: float) -> torch.Tensor:
    """Cross-entropy between each teacher global view and every *other* student view, averaged."""
    targets = [F.softmax((t - center) / teacher_temperature, dim=1).detach() for t in teacher]
    log_probs = [F.log_softmax(s / student_temperature, dim=1) for s in student]
    terms = [-(q * log_probs[v]).sum(1).mean() for i, q in enumerate(targets) for v in range(len(student)) if v != i]
    return sum(terms) / len(terms)


@METHODS.register
class DINO(Method):
    name = "dino"

    @dataclass(frozen=True)
    class Params(CheckedParams):
        out_dim: int = 1024
        student_temperature: float = 0.1
        teacher_temperature: float = 0.04
        center_momentum: float = 0.9
        base_momentum: float = 0.996
        local_crops: int = 4
        constraints: ClassVar[Constraints] = {
            "out_dim": Interval(int, 1), "student_temperature": Interval(float, 0, open_low=True),
            "teacher_temperature": Interval(float, 0, open_low=True), "center_momentum": Interval(float, 0, 1),
            "base_momentum": Interval(float, 0, 1), "local_crops": Interval(int, 0)}

    def __init__(self, backbone: nn.Module, context: MethodContext, **params):
        super().__init__(backbone, context, **params)
        self.student = nn.Sequential(backbone, DINOHead(context.feature_dim, self.params.out_dim))
        self.teacher = frozen_copy(self.student)
        self.register_buffer("center", torch.zeros(1, self.params.out_dim))

    def view_specs(self) -> list[ViewSpec]:
        return multi_crop(self.context.input_size, self.params.local_crops)

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        p = self.params
        student = encode_crops(self.student, views)
        with torch.no_grad():
            teacher = self.teacher(torch.cat(views[:2])).chunk(2)
        loss = dino_loss(student, list(teacher), self.center, p.student_temperature, p.teacher_temperature)
        with torch.no_grad():
            batch_center = torch.cat(teacher).mean(0, keepdim=True)
            self.center.mul_(p.center_momentum).add_(batch_center, alpha=1 - p.center_momentum)
        return loss

    def after_step(self, progress: float) -> None:
        ema_update(self.teacher, self.student, cosine_momentum(self.params.base_momentum, progress))
