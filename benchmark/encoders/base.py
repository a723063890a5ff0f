"""The encoder interface every protocol sees: preprocessed images in, pooled features out."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from benchmark.backbones import timm_dense
from benchmark.encoders.weights import extract_state_dict, load_into, safe_load
from benchmark.identity import file_sha256
from benchmark.preprocessing import Preprocessing

from benchmark.vocab import FeatureKind

log = logging.getLogger(__name__)


@dataclass
class Encoder:
    """A frozen model plus the preprocessing its weights expect.

    `identity` holds everything that determines the weights (source, architecture, weights checksum or
    random-init seed); the feature cache hashes it, so two different models never share an entry.
    """

    name: str
    model: nn.Module
    preprocessing: Preprocessing
    identity: dict[str, Any]
    random_init: bool = False
    load_report: list[str] = field(default_factory=list)
    dense_fn: Callable[[torch.Tensor], torch.Tensor] | None = None  # images -> (N, C, h, w)
    text_fn: Callable[[list[str]], torch.Tensor] | None = None  # prompts -> (N, D)
    logit_scale: float | None = None  # CLIP's learned temperature, when the model has one
    trainable: bool = True  # False for fixed feature maps (raw pixels) that have nothing to fine-tune
    facts: dict[str, Any] = field(default_factory=dict)  # published facts, not identity: {"imagenet_top1": 74.84}

    @property
    def capabilities(self) -> tuple[FeatureKind, ...]:
        """What this encoder can give protocols (they declare which of these they require)."""
        present = {FeatureKind.POOLED: True, FeatureKind.DENSE: self.dense_fn is not None,
                   FeatureKind.TEXT: self.text_fn is not None, FeatureKind.MODEL: self.trainable}
        return tuple(kind for kind in FeatureKind if present[kind])

    def __post_init__(self) -> None:
        self.model.eval()
        if self.random_init:
            log.warning("!" * 72 + "\n!! %s HAS RANDOM WEIGHTS: a baseline, not a "
                        "pretrained model\n" + "!" * 72, self.name)

    @property
    def label(self) -> str:
        return f"{self.name} [random init]" if self.random_init else self.name

    @torch.inference_mode()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled features (N, D) of a preprocessed float batch (N, 3, H, W)."""
        features = self.model(images)
        return features.flatten(1).float()

    @torch.inference_mode()
    def encode_dense(self, images: torch.Tensor) -> torch.Tensor:
        """Dense features (N, C, h, w): the last feature map of a CNN, or ViT patch tokens on their grid."""
        if self.dense_fn is None:
            raise ValueError(f"{self.label} has no dense features")
        return self.dense_fn(images).float()

    @torch.inference_mode()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        if self.text_fn is None:
            raise ValueError(f"{self.label} has no text tower")
        return self.text_fn(prompts).float()

    def to(self, device: str | torch.device) -> Encoder:
        self.model.to(device)
        return self


def encoder_from_file(source: str, arch: str, model: nn.Module, weights: Path | None,
                      preprocessing: Preprocessing) -> Encoder:
    """Wrap a head-less model; with a weights file, load it (prefixes stripped), else random init."""
    identity = {"source": source, "arch": arch}
    dense = timm_dense(model) if hasattr(model, "forward_features") else None
    if weights is None:
        return Encoder(f"{source}:{arch}", model, preprocessing, {**identity, "init_seed": 0}, random_init=True,
                       dense_fn=dense)
    report = load_into(model, extract_state_dict(safe_load(weights), weights), arch, weights)
    return Encoder(f"{source}:{arch}@{weights.name}", model, preprocessing,
                   {**identity, "weights_sha256": file_sha256(weights)}, load_report=report.lines(), dense_fn=dense)
