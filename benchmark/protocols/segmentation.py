"""Dense linear probe (DINOv2's linear segmentation evaluation) on frozen dense features.

A BatchNorm + 1x1 convolution head maps the frozen feature map (ViT patch tokens on their grid, or a
CNN's last feature map) to class logits, which are bilinearly upsampled to the label resolution and
trained with cross-entropy ignoring the void label (255) on train+val. Scored on test by mIoU over the
classes present in its ground truth (intersection and union accumulated over the split), plus pixel
accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.devices import to_numpy
from benchmark.metrics import VOID, segmentation_scores
from benchmark.params import CheckedParams, Constraints, Interval
from benchmark.protocols import PROTOCOLS
from benchmark.protocols.base import FeatureTask, Protocol, ProtocolResult, check_finite, require_test_split
from benchmark.seeding import seeded_init
from benchmark.vocab import FeatureKind, Metric, TaskType


class BatchGatherer:
    """Rows of host tensors gathered straight into page-locked buffers (on a GPU) and copied without
    blocking, so a batch's copy overlaps the previous step. Two buffer sets alternate; before one is
    refilled, the copy that last read it must have finished (its event)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, pin: bool):
        self.x, self.y, self.pin, self.turn = x, y, pin, 0
        if pin:
            self.buffers = [(pinned_rows(x, batch_size), pinned_rows(y, batch_size)) for _ in range(2)]
            self.copied = [None, None]

    def __call__(self, rows: torch.Tensor, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.pin:
            return self.x[rows].to(device), self.y[rows].to(device)
        turn, self.turn = self.turn, 1 - self.turn
        if self.copied[turn] is not None:
            self.copied[turn].synchronize()
        images, targets = (torch.index_select(t, 0, rows, out=buffer[:len(rows)]).to(device, non_blocking=True)
                           for t, buffer in zip((self.x, self.y), self.buffers[turn]))
        self.copied[turn] = torch.cuda.Event()
        self.copied[turn].record()
        return images, targets


def pinned_rows(like: torch.Tensor, rows: int) -> torch.Tensor:
    return torch.empty((rows, *like.shape[1:]), dtype=like.dtype, pin_memory=True)  # device: a pinned host buffer


def linear_head(channels: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.Conv2d(channels, classes, kernel_size=1))


def upsampled_logits(head: nn.Module, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(head(features), size=size, mode="bilinear", align_corners=False)


def predict(head: nn.Module, features: np.ndarray, size: tuple[int, int], batch: int = 128) -> np.ndarray:
    """Predicted masks, batch by batch on the head's device, returned as a CPU array."""
    head.eval()
    device = next(head.parameters()).device
    with torch.no_grad():
        parts = [to_numpy(upsampled_logits(head, torch.as_tensor(np.array(features[i:i + batch]), device=device),
                                           size).argmax(1)) for i in range(0, len(features), batch)]
    return np.concatenate(parts)


@PROTOCOLS.register
class DenseLinearProbe(Protocol):
    name = "segmentation"
    version = "1.0"
    requires = (FeatureKind.DENSE,)
    tasks = (TaskType.SEGMENTATION,)

    @dataclass(frozen=True)
    class Params(CheckedParams):
        epochs: int = 20
        lr: float = 1e-3
        weight_decay: float = 1e-4
        batch_size: int = 64
        seed: int = 0
        constraints: ClassVar[Constraints] = {
            "epochs": Interval(int, 1), "lr": Interval(float, 0, open_low=True), "weight_decay": Interval(float, 0),
            "batch_size": Interval(int, 1), "seed": Interval(int, 0)}

    def evaluate(self, data: FeatureTask) -> ProtocolResult:
        check_finite(data)
        require_test_split(data, self.name)
        trainval = data.trainval
        head, losses = self.train(np.asarray(trainval.x), np.asarray(trainval.y), data.num_classes, data.device)
        size = tuple(data.test.y.shape[-2:])
        scores = segmentation_scores(predict(head, data.test.x, size), np.asarray(data.test.y), data.num_classes, VOID)
        return ProtocolResult(value=scores["miou"], metric=Metric.MIOU,
                              details={**scores, "final_loss": losses[-1], "loss_curve": losses[:: max(1, len(losses) // 20)]})

    def train(self, features: np.ndarray, masks: np.ndarray, classes: int, device: str = "cpu"
              ) -> tuple[nn.Module, list[float]]:
        """The head on the device; feature maps stay in host memory and go over one batch at a time."""
        p = self.params
        generator = torch.Generator().manual_seed(p.seed)
        head = seeded_init(lambda: linear_head(features.shape[1], classes), p.seed).to(device)
        optimizer = torch.optim.AdamW(head.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        x = torch.as_tensor(np.array(features))  # device: the pool stays on the CPU; batches move
        y = torch.as_tensor(masks.astype(np.int64))  # device: with x
        gather = BatchGatherer(x, y, p.batch_size, pin=device.startswith("cuda"))
        losses = []  # kept on the device, read once at the end (no wait for the GPU every step)
        head.train()
        for _ in range(p.epochs):
            for batch in torch.randperm(len(x), generator=generator).split(p.batch_size):
                images, targets = gather(batch, device)
                loss = F.cross_entropy(upsampled_logits(head, images, tuple(y.shape[-2:])), targets,
                                       ignore_index=VOID)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.detach())
        return head, torch.stack(losses).tolist() if losses else []
