"""`pixels:SIZE`: the raw-pixel baseline. The preprocessed image (3 channels, [0, 1]) is
average-pooled to SIZE x SIZE and flattened, so a suite's input size never blows up the feature
dimension; any representation worth using should beat it."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from benchmark.encoders import ENCODER_SOURCES
from benchmark.encoders.base import Encoder
from benchmark.errors import UserError
from benchmark.preprocessing import Preprocessing


@ENCODER_SOURCES.register("pixels")
def build(name: str, weights: Path | None) -> Encoder:
    if not name.isdigit() or weights is not None or int(name) < 1:
        raise UserError(f"the raw-pixel baseline is spelled pixels:SIZE with SIZE >= 1 (e.g. pixels:32), got "
                        f"pixels:{name}")
    size = int(name)
    preprocessing = Preprocessing(input_size=size, resize_size=size, interpolation="bilinear",
                                  mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    model = nn.Sequential(nn.AdaptiveAvgPool2d(size), nn.Flatten())
    return Encoder(f"pixels:{size}", model, preprocessing, {"source": "pixels", "size": size},
                   dense_fn=nn.AdaptiveAvgPool2d(size), trainable=False)
