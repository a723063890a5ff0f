"""`torchvision:ARCH[@WEIGHTS]`: a torchvision classification model with its head replaced by identity.

Preprocessing is torchvision's ImageNet recipe (resize 256, centre-crop 224, bilinear, ImageNet stats).
"""

from __future__ import annotations

from pathlib import Path

from benchmark.encoders import ENCODER_SOURCES
from benchmark.backbones import create_torchvision_headless
from benchmark.encoders.base import Encoder, encoder_from_file
from benchmark.seeding import seeded_init
from benchmark.preprocessing import Preprocessing

TORCHVISION_PREPROCESSING = Preprocessing(input_size=224, resize_size=256, interpolation="bilinear")


@ENCODER_SOURCES.register("torchvision")
def build(name: str, weights: Path | None) -> Encoder:
    model = seeded_init(lambda: create_torchvision_headless(name))
    return encoder_from_file("torchvision", name, model, weights, TORCHVISION_PREPROCESSING)
