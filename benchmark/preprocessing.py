"""The preprocessing an encoder needs, carried with the encoder (as timm's pretrained configs do).

The data side receives a `Preprocessing` value and builds its transform from it; nothing is read from
loose CLI flags. Suites may override fields (e.g. a smaller input size for the offline suite).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torchvision.transforms import v2 as T
from torchvision.transforms.v2 import functional as TF

from benchmark.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_MODES = ("shorter", "square")
MAX_SIZE = 8192  # pixels: larger crops are a typo (100000 x 100000 x 3 floats is 120 GB per image)
INTERPOLATIONS = {
    "bicubic": T.InterpolationMode.BICUBIC,
    "bilinear": T.InterpolationMode.BILINEAR,
    "nearest": T.InterpolationMode.NEAREST,
}
# Interpolations resized in float32 rather than uint8. torch's uint8 antialiased bilinear resize has an AVX2
# kernel that rounds differently from its generic one (ARM, or x86 without AVX2): measured on 300 MNIST
# digits resized to 64 px, 4.5% of pixels one uint8 level apart, and raw-pixel features that moved
# calibration by 0.1 ECE and alpha-ReQ by 0.14. In float32 the two kernels agree to rounding. Bicubic
# gave identical uint8 pixels on both kernels and stays uint8, as do its features and cache keys.
FLOAT_RESIZE = frozenset({"bilinear"})


@dataclass(frozen=True)
class Preprocessing:
    """Resize, centre-crop and normalise; images become float CHW tensors with 3 channels.

    `resize_mode="shorter"` resizes the shorter side to `resize_size` (the many-shot reference);
    `"square"` resizes to `resize_size` x `resize_size` ignoring aspect (the few-shot reference).
    """

    input_size: int = 224
    resize_size: int = 224
    resize_mode: str = "shorter"
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        for name in ("input_size", "resize_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
                raise UserError(f"preprocessing {name} must be a whole number of pixels in [1, {MAX_SIZE}], got "
                                f"{value!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if (not isinstance(value, (tuple, list)) or len(value) != 3
                    or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
                               for v in value)):
                raise UserError(f"preprocessing {name} must be three numbers (one per RGB channel), got {value!r}")
            object.__setattr__(self, name, tuple(float(v) for v in value))
        if min(self.std) <= 0:
            raise UserError(f"preprocessing std must be above 0 in every channel (images are divided by it), got "
                            f"{self.std}")
        if self.resize_mode not in RESIZE_MODES:
            raise UserError(f"preprocessing resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise UserError(f"preprocessing interpolation must be one of {sorted(INTERPOLATIONS)}, "
                            f"got {self.interpolation!r}")
        if self.resize_size < self.input_size:
            raise UserError(f"preprocessing resize_size ({self.resize_size}) is smaller than the crop "
                            f"input_size ({self.input_size}); set resize_size >= input_size")

    def with_overrides(self, overrides: dict[str, Any]) -> Preprocessing:
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise UserError(f"unknown preprocessing field(s) {unknown}; valid fields: {sorted(valid)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        if "input_size" in values and "resize_size" not in values:
            values["resize_size"] = values["input_size"]
        return dataclasses.replace(self, **values)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key_fields(self) -> dict[str, Any]:
        """The fields, plus the resize's dtype where it is float32 (`FLOAT_RESIZE`): the identity of the
        features this preprocessing makes, so those made by the old uint8 resize are not reused."""
        return self.as_dict() | ({"resize_dtype": "float32"} if self.interpolation in FLOAT_RESIZE else {})

    def transform(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """A transform from a uint8 CHW tensor (1, 3 or 4 channels) to a normalised float tensor."""
        return ImageTransform(self)

    def composed(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The same transform as a torchvision `Compose`: the reference `ImageTransform` is checked against
        (tests) and timed against (perf/extraction.py)."""
        size = self.resize_size if self.resize_mode == "shorter" else [self.resize_size] * 2
        in_float = [T.ToDtype(torch.float32, scale=True)] if self.interpolation in FLOAT_RESIZE else []
        return T.Compose([T.Lambda(to_three_channels), *in_float,
                          T.Resize(size, interpolation=INTERPOLATIONS[self.interpolation], antialias=True),
                          T.CenterCrop(self.input_size), T.ToDtype(torch.float32, scale=True),
                          T.Normalize(list(self.mean), list(self.std))])

    def mask_transform(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The same geometry for a (1, H, W) label mask: nearest-neighbour resize, centre crop."""
        size = self.resize_size if self.resize_mode == "shorter" else [self.resize_size] * 2
        return T.Compose([T.Resize(size, interpolation=T.InterpolationMode.NEAREST),
                          T.CenterCrop(self.input_size)])


@dataclass(frozen=True)
class ImageTransform:
    """Resize, centre-crop, scale to [0, 1] and normalise one uint8 CHW image, with torchvision's own kernels
    called directly: the bits of `Preprocessing.composed()`, in less time (its dispatch per step, and for a
    grayscale image two of three resizes, are gone; `perf/extraction.py` times both). A grayscale image is
    resized once and copied to three channels afterwards: resizing works on each channel alone, so the
    pixels are the ones three resized copies would have (a test compares the two transforms bit for bit
    on the AVX2 and the generic kernels)."""

    preprocessing: Preprocessing

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        p = self.preprocessing
        image = image[:3] if image.shape[0] == 4 else image
        if p.interpolation in FLOAT_RESIZE:
            image = TF.to_dtype(image, torch.float32, scale=True)
        size = [p.resize_size] if p.resize_mode == "shorter" else [p.resize_size] * 2
        image = TF.resize(image, size, interpolation=INTERPOLATIONS[p.interpolation], antialias=True)
        image = TF.to_dtype(TF.center_crop(image, [p.input_size]), torch.float32, scale=True)
        return TF.normalize(to_three_channels(image), list(p.mean), list(p.std))


def to_three_channels(image: torch.Tensor) -> torch.Tensor:
    if image.shape[0] == 1:
        return image.expand(3, -1, -1)
    if image.shape[0] == 4:
        return image[:3]
    return image

