"""Head-less networks, shared by encoder sources, pretraining and fine-tuning: building a timm model
without its classifier, reading its dense feature map, and measuring its output width."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from benchmark.errors import UserError
from benchmark.identity import Component
from benchmark.preprocessing import Preprocessing
from benchmark.registry import unknown_name_message


def create_headless(arch: str, small_stem: bool = False, pretrained_file: Path | None = None, **kwargs: Any
                    ) -> nn.Module:
    """A timm model without its classifier; `small_stem` swaps a ResNet's first conv for a 3x3
    stride-1 one (keeping the max-pool), the usual change for 32-64 px inputs. ViTs are built with
    `dynamic_img_size`, so suites may change the input size. With `pretrained_file`, timm's own loader
    reads the weights from it (`arch` may be `arch.tag` or `hf-hub:ORG/NAME`)."""
    import timm

    if not arch.startswith("hf-hub:") and not timm.is_model(arch):
        raise UserError(unknown_name_message("timm architecture", arch, timm.list_models()))
    if pretrained_file is not None:
        kwargs |= {"pretrained": True, "pretrained_cfg_overlay": {"file": str(pretrained_file)}}
    try:
        model = timm.create_model(arch, num_classes=0, dynamic_img_size=True, **({"pretrained": False} | kwargs))
    except TypeError as err:
        if "dynamic_img_size" not in str(err):  # the user's own argument was refused
            raise UserError(f"timm.create_model({arch!r}) refused an argument: {err}; check --arch-kwarg / "
                            f"arch_kwargs") from None
        model = create_without_dynamic_size(arch, **kwargs)
    return with_small_stem(model, arch) if small_stem else model


def create_without_dynamic_size(arch: str, **kwargs: Any) -> nn.Module:
    import timm

    try:
        return timm.create_model(arch, num_classes=0, **({"pretrained": False} | kwargs))
    except TypeError as err:
        raise UserError(f"timm.create_model({arch!r}) refused an argument: {err}; check --arch-kwarg / "
                        f"arch_kwargs") from None


HEAD_ATTRIBUTES = ("fc", "classifier", "heads", "head")


def create_torchvision_headless(arch: str) -> nn.Module:
    import torchvision.models

    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise UserError(unknown_name_message("torchvision architecture", arch,
                                             torchvision.models.list_models(module=torchvision.models)))
    model = torchvision.models.get_model(arch, weights=None)
    for attribute in HEAD_ATTRIBUTES:
        if hasattr(model, attribute):
            setattr(model, attribute, nn.Identity())
            break
    return model


def with_small_stem(model: nn.Module, arch: str) -> nn.Module:
    first = getattr(model, "conv1", None)
    if not isinstance(first, nn.Conv2d):
        raise UserError(f"small_stem applies to ResNets with a single first conv; {arch} has none")
    model.conv1 = nn.Conv2d(first.in_channels, first.out_channels, 3, stride=1, padding=1, bias=False)
    return model


DENSE_STRIDE = 16  # what ViTs' patch tokens have, and DeepLab's "output stride 16"


def dense_stage(model: nn.Module) -> int | None:
    """For a hierarchical timm model (final stride above DENSE_STRIDE, e.g. a CNN at 32): the index in
    `feature_info` of its deepest stage at stride <= DENSE_STRIDE. None for ViTs (one stride throughout)."""
    info = getattr(model, "feature_info", None)
    if not info or not hasattr(model, "forward_intermediates"):
        return None
    reductions = [int(stage["reduction"]) for stage in info]
    if reductions[-1] <= DENSE_STRIDE:
        return None
    return max(i for i, reduction in enumerate(reductions) if reduction <= DENSE_STRIDE)


# dense feature maps: 2 = a CNN's stride-16 stage (timm_dense); bump when the map a model gives changes
DENSE_MAPS = Component("dense_maps", "2")


def timm_dense(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Dense features for the segmentation probe: a CNN's deepest stride-16 stage (at 64 px the last,
    stride-32 map is 2x2, too coarse for a dense task; measured on fmnist_mosaic at 112 px, the
    stride-16 stage of EfficientNet-Lite0 gives 44.0 mIoU ImageNet vs 13.3 random init, the stride-8
    stage 22.1 vs 21.3), or a ViT's patch tokens (prefix tokens dropped) on their 2-D grid."""
    stage = dense_stage(model)

    def dense(images: torch.Tensor) -> torch.Tensor:
        if stage is not None:
            return model.forward_intermediates(images, indices=[stage], intermediates_only=True, stop_early=True)[0]
        features = model.forward_features(images)
        if features.ndim == 4:
            return features
        tokens = features[:, getattr(model, "num_prefix_tokens", 0):]
        side = int(round(tokens.shape[1] ** 0.5))
        return tokens.transpose(1, 2).reshape(len(tokens), -1, side, tokens.shape[1] // side)

    return dense


@torch.no_grad()
def output_width(model: nn.Module, input_size: int) -> int:
    """The flattened output width of `model` (put in eval mode) on input_size x input_size images."""
    device = next(model.parameters(), torch.empty(0)).device  # device: of an empty model, the CPU
    return model.eval()(torch.zeros(2, 3, input_size, input_size, device=device)).flatten(1).shape[1]


def timm_preprocessing(model: nn.Module) -> Preprocessing:
    """The preprocessing timm's pretrained config names for this architecture."""
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(model)
    size = int(cfg["input_size"][-1])
    interpolation = cfg.get("interpolation", "bicubic")
    return Preprocessing(input_size=size, resize_size=int(size / cfg.get("crop_pct", 1.0)),
                         interpolation=interpolation if interpolation in ("bicubic", "bilinear") else "bicubic",
                         mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))


# which builder makes a head-less network of each architecture source (checkpoints name theirs)
HEADLESS_BUILDERS: dict[str, Callable[..., nn.Module]] = {"timm": create_headless,
                                                          "torchvision": create_torchvision_headless}
