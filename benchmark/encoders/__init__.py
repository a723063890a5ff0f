"""Encoders from model specs `SOURCE:NAME[@WEIGHTS_FILE][#FEATURE_OPTIONS]`; each source is one module
registering a builder `build(name, weights) -> Encoder` in `ENCODER_SOURCES`. A source that can read
other features (`benchmark.encoders.feature_choice`) also takes `features=FeatureChoice`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.encoders.base import Encoder
from benchmark.encoders.feature_choice import FeatureChoice
from benchmark.errors import UserError
from benchmark.registry import Registry

EncoderBuilder = Callable[[str, "Path | None"], Encoder]
ENCODER_SOURCES: Registry[EncoderBuilder] = Registry("encoder source", package=__name__, check=callable,
                                                      expected="a function (name, weights) -> Encoder")
SPEC_FORMAT = ("SOURCE:NAME[@WEIGHTS_FILE][#FEATURE_OPTIONS] (e.g. timm:resnet50@/path/weights.pth, "
               "checkpoint:/path/model.pt, hf:facebook/dinov2-small#pool=cls+mean,blocks=4)")
# sources whose whole NAME is the spec ('@' belongs to it: hf:ORG/NAME@REVISION, a checkpoint path)
WHOLE_NAME_SOURCES = ("checkpoint", "hf")


@dataclass(frozen=True)
class ModelSpec:
    source: str
    name: str
    weights: Path | None = None
    features: FeatureChoice = field(default_factory=FeatureChoice)

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        text, _, options = text.strip().partition("#")
        features = FeatureChoice.parse(options)
        spec = cls.parse_source(text)
        return ModelSpec(spec.source, spec.name, spec.weights, features)

    @classmethod
    def parse_source(cls, text: str) -> ModelSpec:
        source, sep, rest = text.strip().partition(":")
        if not sep or not source or not rest:
            raise UserError(f"model spec {text!r} is not of the form {SPEC_FORMAT}; "
                            f"sources: {', '.join(ENCODER_SOURCES.names())}")
        ENCODER_SOURCES.get(source)  # unknown source: error with close matches
        if source == "checkpoint":
            return cls(source, rest, Path(rest).expanduser())
        if source in WHOLE_NAME_SOURCES:
            return cls(source, rest)
        name, at, weights = rest.partition("@")
        if at and not weights:
            raise UserError(f"model spec {text!r} has '@' but no weights file after it; {SPEC_FORMAT}")
        return cls(source, name, Path(weights).expanduser() if weights else None)

    def __str__(self) -> str:
        if self.source == "checkpoint":
            return f"checkpoint:{self.name}{self.features.suffix()}"
        return f"{self.source}:{self.name}" + (f"@{self.weights}" if self.weights else "") + self.features.suffix()


def load_encoder(spec: str | ModelSpec) -> Encoder:
    spec = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    builder = ENCODER_SOURCES.get(spec.source)
    if spec.features.is_default:
        return builder(spec.name, spec.weights)
    if "features" not in inspect.signature(builder).parameters:
        readers = [name for name in ENCODER_SOURCES.names()
                   if "features" in inspect.signature(ENCODER_SOURCES.get(name)).parameters]
        raise UserError(f"{spec.source}: models of this source give one kind of features; feature options "
                        f"({spec.features.suffix()}) work with {', '.join(readers)}")
    return builder(spec.name, spec.weights, features=spec.features)  # its name and identity say which features


__all__ = ["ENCODER_SOURCES", "Encoder", "ModelSpec", "load_encoder"]
