"""Encoders from model specs `SOURCE:NAME[@WEIGHTS_FILE]`; each source is one module registering a
builder `build(name, weights) -> Encoder` in `ENCODER_SOURCES`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmark.encoders.base import Encoder
from benchmark.errors import UserError
from benchmark.registry import Registry

EncoderBuilder = Callable[[str, "Path | None"], Encoder]
ENCODER_SOURCES: Registry[EncoderBuilder] = Registry("encoder source", package=__name__, check=callable,
                                                      expected="a function (name, weights) -> Encoder")
SPEC_FORMAT = "SOURCE:NAME[@WEIGHTS_FILE] (e.g. timm:resnet50@/path/weights.pth, checkpoint:/path/model.pt)"
# sources whose whole NAME is the spec ('@' belongs to it: hf:ORG/NAME@REVISION, a checkpoint path)
WHOLE_NAME_SOURCES = ("checkpoint", "hf")


@dataclass(frozen=True)
class ModelSpec:
    source: str
    name: str
    weights: Path | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
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
            return f"checkpoint:{self.name}"
        return f"{self.source}:{self.name}" + (f"@{self.weights}" if self.weights else "")


def load_encoder(spec: str | ModelSpec) -> Encoder:
    spec = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    return ENCODER_SOURCES.get(spec.source)(spec.name, spec.weights)


__all__ = ["ENCODER_SOURCES", "Encoder", "ModelSpec", "load_encoder"]
