"""LiT-style image-text training (Zhai et al., CVPR 2022, with the towers' roles as the issue asks):
the image tower learns, through a linear projection, to match a frozen real text tower's embeddings
of captions built from class names and CLIP prompt templates; CLIP's symmetric InfoNCE with a
learned logit scale (init 1/0.07, capped at 100). The text tower is all-MiniLM-L6-v2 by default or
any open_clip model (`text_tower: open_clip:ARCH@WEIGHTS`). The evaluated encoder keeps the
projection and the text tower, so `zeroshot` scores it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.encoders.text_towers import load_text_tower
from benchmark.errors import UserError
from benchmark.prompts import TEMPLATES
from benchmark.params import CheckedParams, Constraints, Interval, Text
from benchmark.training import METHODS
from benchmark.training.base import Method, MethodContext

CAPTION_TEMPLATES = TEMPLATES["cifar10"]  # CLIP's 18 generic "a photo of a {}." variants


def clip_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy over the image-text similarity matrix (pairs on the diagonal)."""
    logits = logit_scale * F.normalize(image, dim=1) @ F.normalize(text, dim=1).T
    targets = torch.arange(len(image), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


@METHODS.register
class LiT(Method):
    name = "lit"
    uses_labels = True

    @dataclass(frozen=True)
    class Params(CheckedParams):
        text_tower: str = "minilm"
        init_temperature: float = 0.07
        constraints: ClassVar[Constraints] = {
            "text_tower": Text(), "init_temperature": Interval(float, 0, open_low=True)}

    def __init__(self, backbone: nn.Module, context: MethodContext, **params):
        super().__init__(backbone, context, **params)
        if not context.class_names:
            raise UserError("lit builds captions from class names; the source dataset declares none")
        tower = load_text_tower(self.params.text_tower)
        prompts = [t.format(name) for name in context.class_names for t in CAPTION_TEMPLATES]
        captions = F.normalize(tower(prompts).float(), dim=1)  # the frozen tower, run once per caption
        self.register_buffer("captions", captions.view(len(context.class_names), len(CAPTION_TEMPLATES), -1))
        self.projection = nn.Linear(context.feature_dim, captions.shape[1])
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(1 / self.params.init_temperature)))

    def views(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        (view,) = super().views(images, generator)
        return [view, torch.randint(len(CAPTION_TEMPLATES), (len(view),), generator=generator)]

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        images, template = views
        text = self.captions[labels, template]
        scale = self.log_logit_scale.exp().clamp(max=100)
        return clip_loss(self.projection(self.backbone(images)), text, scale)

    def export(self) -> dict[str, Any]:
        return {"projection": {k: v.detach().cpu() for k, v in self.projection.state_dict().items()},
                "logit_scale": float(self.log_logit_scale.detach().exp().clamp(max=100)),
                "text_tower": self.params.text_tower}
