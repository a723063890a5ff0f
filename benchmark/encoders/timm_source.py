"""`timm:ARCH[@WEIGHTS]`: any timm architecture, head removed, with timm's preprocessing config."""

from __future__ import annotations

from pathlib import Path

from benchmark.backbones import create_headless, timm_preprocessing
from benchmark.encoders import ENCODER_SOURCES
from benchmark.encoders.base import Encoder, encoder_from_file
from benchmark.seeding import seeded_init


@ENCODER_SOURCES.register("timm")
def build(name: str, weights: Path | None) -> Encoder:
    model = seeded_init(lambda: create_headless(name))
    return encoder_from_file("timm", name, model, weights, timm_preprocessing(model))
