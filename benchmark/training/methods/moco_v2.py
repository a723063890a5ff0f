"""MoCo v2 (Chen et al., 2020): a query encoder, a momentum (EMA) key encoder, and a FIFO queue of
past keys as negatives; InfoNCE with temperature, MLP head, SimCLR-style augmentation. (Shuffling BN
across GPUs, which hides batch statistics from the keys, has no single-process counterpart.)"""

from __future__ import annotations

from typing import ClassVar

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.params import CheckedParams, Constraints, Interval
from benchmark.training import METHODS
from benchmark.training.augment import ViewSpec, simclr_view
from benchmark.training.base import Method, MethodContext, ema_update, frozen_copy, mlp


def moco_infonce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """Each query must pick its key (column 0) against the queue's negatives; q, k, queue L2-normalised."""
    positives = (q * k).sum(1, keepdim=True)
    negatives = q @ queue.T
    logits = torch.cat([positives, negatives], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


@METHODS.register
class MoCoV2(Method):
    name = "moco_v2"

    @dataclass(frozen=True)
    class Params(CheckedParams):
        temperature: float = 0.2
        momentum: float = 0.99  # the paper's 0.999 assumes 800 epochs; short runs need a faster key encoder
        queue_size: int = 4096
        projection_dim: int = 128
        hidden_dim: int = 512
        constraints: ClassVar[Constraints] = {
            "temperature": Interval(float, 0, open_low=True), "momentum": Interval(float, 0, 1),
            "queue_size": Interval(int, 1), "projection_dim": Interval(int, 1), "hidden_dim": Interval(int, 1)}

    def __init__(self, backbone: nn.Module, context: MethodContext, **params):
        super().__init__(backbone, context, **params)
        p = self.params
        self.query = nn.Sequential(backbone, mlp(context.feature_dim, p.hidden_dim, p.projection_dim))
        self.key = frozen_copy(self.query)
        self.register_buffer("queue", F.normalize(torch.randn(p.queue_size, p.projection_dim), dim=1))
        self.register_buffer("queue_pointer", torch.zeros((), dtype=torch.long))

    def view_specs(self) -> list[ViewSpec]:
        return [simclr_view(self.context.input_size)] * 2

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        q = F.normalize(self.query(views[0]), dim=1)
        with torch.no_grad():
            k = F.normalize(self.key(views[1]), dim=1)
        loss = moco_infonce(q, k, self.queue.clone(), self.params.temperature)
        self.enqueue(k)
        return loss

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        slots = (self.queue_pointer + torch.arange(len(keys), device=keys.device)) % len(self.queue)
        self.queue[slots] = keys
        self.queue_pointer.copy_((self.queue_pointer + len(keys)) % len(self.queue))

    def after_step(self, progress: float) -> None:
        ema_update(self.key, self.query, self.params.momentum)
