"""What a pretraining method supplies to the generic loop: its heads, its views and its loss.

A method is an `nn.Module` holding the backbone and everything it trains or tracks (heads, EMA
targets, queues, centres), so one state dict captures a resumable run. The loop knows nothing else.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from benchmark.params import CheckedParams, build_params
from benchmark.training.augment import ViewSpec, make_view, normalize


@dataclass(frozen=True)
class MethodContext:
    """What a method may need beyond its backbone: the feature width, the label count, the image
    statistics for normalisation, and the input size."""

    feature_dim: int
    num_classes: int
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] = ()


class Method(nn.Module):
    """Base class: subclasses set `name`, a `Params` dataclass of defaults, `view_specs`, and `loss`."""

    name: ClassVar[str] = ""
    uses_labels: ClassVar[bool] = False

    @dataclass(frozen=True)
    class Params(CheckedParams):
        pass

    def __init__(self, backbone: nn.Module, context: MethodContext, **params: Any):
        super().__init__()
        self.backbone, self.context = backbone, context
        self.params = build_params(self.Params, params, f"method {self.name}")

    def view_specs(self) -> list[ViewSpec]:
        """The augmentations of each view (the method's pipeline)."""
        return [ViewSpec(self.context.input_size, scale=(0.35, 1.0))]

    def views(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        """Normalised augmented views of a batch of [0, 1] images."""
        return [normalize(make_view(images, spec, generator), self.context.mean, self.context.std)
                for spec in self.view_specs()]

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self, progress: float) -> None:
        """Called after each optimiser step with the fraction of training done (EMA updates live here)."""

    def export(self) -> dict[str, Any]:
        """Extra modules the evaluated encoder keeps besides the backbone (e.g. LiT's projection)."""
        return {}


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 2, last_bn: bool = False) -> nn.Sequential:
    """Linear-BN-ReLU blocks then a final Linear (optionally BN without affine, as SimSiam/Barlow use)."""
    blocks: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers - 1):
        blocks += [nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        dim = hidden
    blocks.append(nn.Linear(dim, out_dim, bias=not last_bn))
    if last_bn:
        blocks.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*blocks)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A target network: a copy that receives no gradients (updated by EMA)."""
    target = copy.deepcopy(module)
    for parameter in target.parameters():
        parameter.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)
    for t, o in zip(target.buffers(), online.buffers()):
        t.copy_(o)


def cosine_momentum(base: float, progress: float) -> float:
    """BYOL/DINO's schedule: from `base` to 1 along a cosine over training."""
    return 1 - (1 - base) * (torch.cos(torch.tensor(progress * torch.pi)).item() + 1) / 2  # device: a Python number


def off_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    """The off-diagonal entries of a square matrix, flattened (Barlow Twins, VICReg)."""
    n = len(matrix)
    return matrix.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()
