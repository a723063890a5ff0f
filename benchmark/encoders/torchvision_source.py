"""`torchvision:ARCH[@WEIGHTS]`: a torchvision classification model with its head replaced by identity.

Preprocessing is torchvision's ImageNet recipe (resize 256, centre-crop 224, bilinear, ImageNet stats).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from benchmark.encoders import ENCODER_SOURCES
from benchmark.encoders.base import Encoder, seeded_init
from benchmark.encoders.timm_source import encoder_from_file
from benchmark.errors import UserError
from benchmark.preprocessing import Preprocessing

HEAD_ATTRIBUTES = ("fc", "classifier", "heads", "head")
TORCHVISION_PREPROCESSING = Preprocessing(input_size=224, resize_size=256, interpolation="bilinear")


def create_headless(arch: str) -> nn.Module:
    import torchvision.models

    if arch not in torchvision.models.list_models(module=torchvision.models):
        from benchmark.registry import unknown_name_message

        raise UserError(unknown_name_message("torchvision architecture", arch,
                                             torchvision.models.list_models(module=torchvision.models)))
    model = torchvision.models.get_model(arch, weights=None)
    for attribute in HEAD_ATTRIBUTES:
        if hasattr(model, attribute):
            setattr(model, attribute, nn.Identity())
            break
    return model


@ENCODER_SOURCES.register("torchvision")
def build(name: str, weights: Path | None) -> Encoder:
    model = seeded_init(lambda: create_headless(name))
    return encoder_from_file("torchvision", name, model, weights, TORCHVISION_PREPROCESSING)
