"""`timm:ARCH[@WEIGHTS]`: any timm architecture, head removed, with timm's preprocessing config."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from torch import nn

from benchmark.encoders import ENCODER_SOURCES
from benchmark.encoders.base import Encoder, seeded_init
from benchmark.encoders.weights import extract_state_dict, file_sha256, load_into, safe_load
from benchmark.errors import UserError
from benchmark.preprocessing import Preprocessing


def create_headless(arch: str, small_stem: bool = False, **kwargs) -> nn.Module:
    """A timm model without its classifier; `small_stem` swaps a ResNet's first conv for a 3x3
    stride-1 one (keeping the max-pool), the usual change for 32-64 px inputs."""
    import timm

    if not timm.is_model(arch):
        from benchmark.registry import unknown_name_message

        raise UserError(unknown_name_message("timm architecture", arch, timm.list_models()))
    try:  # ViTs accept any input size (suites may override it); other families reject the argument
        model = timm.create_model(arch, pretrained=False, num_classes=0, dynamic_img_size=True, **kwargs)
    except TypeError:
        model = timm.create_model(arch, pretrained=False, num_classes=0, **kwargs)
    return with_small_stem(model, arch) if small_stem else model


def with_small_stem(model: nn.Module, arch: str) -> nn.Module:
    first = getattr(model, "conv1", None)
    if not isinstance(first, nn.Conv2d):
        raise UserError(f"small_stem applies to ResNets with a single first conv; {arch} has none")
    model.conv1 = nn.Conv2d(first.in_channels, first.out_channels, 3, stride=1, padding=1, bias=False)
    return model


def timm_preprocessing(model: nn.Module) -> Preprocessing:
    """The preprocessing timm's pretrained config names for this architecture."""
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(model)
    size = int(cfg["input_size"][-1])
    interpolation = cfg.get("interpolation", "bicubic")
    return Preprocessing(input_size=size, resize_size=int(size / cfg.get("crop_pct", 1.0)),
                         interpolation=interpolation if interpolation in ("bicubic", "bilinear") else "bicubic",
                         mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))


def timm_dense(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """A CNN's last feature map, or a ViT's patch tokens (prefix tokens dropped) on their 2-D grid."""
    def dense(images: torch.Tensor) -> torch.Tensor:
        features = model.forward_features(images)
        if features.ndim == 4:
            return features
        tokens = features[:, getattr(model, "num_prefix_tokens", 0):]
        side = int(round(tokens.shape[1] ** 0.5))
        return tokens.transpose(1, 2).reshape(len(tokens), -1, side, tokens.shape[1] // side)

    return dense


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


@ENCODER_SOURCES.register("timm")
def build(name: str, weights: Path | None) -> Encoder:
    model = seeded_init(lambda: create_headless(name))
    return encoder_from_file("timm", name, model, weights, timm_preprocessing(model))
