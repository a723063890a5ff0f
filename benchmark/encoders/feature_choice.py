"""Which features an encoder gives: the part of a model spec after '#', e.g.

    hf:facebook/dinov2-small#pool=cls+mean,blocks=4     DINOv2's linear-evaluation features
    timm:vit_base_patch16_224.mae#pool=mean              MAE's mean-pooled patch tokens
    hf:openai/clip-vit-base-patch32#proj=pre             CLIP's image embedding before the projection

- `pool` (token models: ViTs): `default` (the model's own pooled output), `cls` (the class token),
  `mean` (the mean of the patch tokens, prefix tokens excluded), `cls+mean` (DINOv2's recipe: the class
  tokens of the last `blocks` blocks and the mean patch token of the last one, concatenated).
- `blocks`: how many last blocks to read (each normalised by the model's final norm, as DINOv2's
  `get_intermediate_layers(norm=True)`); with `cls` or `mean`, each block's vector is concatenated.
- `proj` (image-text models): `post` (default: the embedding zero-shot compares with text) or `pre`.

The choice is part of the encoder's name and identity, so every cache entry and result row says which
features it holds; the defaults leave both as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import ClassVar

import torch

from benchmark.errors import UserError
from benchmark.params import CheckedParams, Constraints, Interval, Options, build_params


class Pooling(StrEnum):
    DEFAULT = "default"
    CLS = "cls"
    MEAN = "mean"
    CLS_MEAN = "cls+mean"


class Projection(StrEnum):
    DEFAULT = "default"
    PRE = "pre"
    POST = "post"


@dataclass(frozen=True)
class FeatureChoice(CheckedParams):
    pool: Pooling = Pooling.DEFAULT
    blocks: int = 1
    proj: Projection = Projection.DEFAULT
    constraints: ClassVar[Constraints] = {"pool": Options(*Pooling), "blocks": Interval(int, 1),
                                          "proj": Options(*Projection)}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.blocks > 1 and self.pool == Pooling.DEFAULT:
            raise UserError("blocks=N reads tokens: give pool=cls, pool=mean or pool=cls+mean with it")

    @classmethod
    def parse(cls, text: str) -> FeatureChoice:
        """'pool=cls+mean,blocks=4' -> FeatureChoice; '' -> the defaults."""
        given = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, eq, value = item.partition("=")
            if not eq:
                raise UserError(f"feature option {item!r} is not KEY=VALUE (e.g. #pool=cls+mean,blocks=4)")
            given[key.strip()] = value.strip()
        return build_params(cls, given, "feature choice (#...)")

    def chosen(self) -> dict[str, str | int]:
        """The options that differ from the defaults (what names and identities carry)."""
        return {f.name: str(getattr(self, f.name)) if f.name != "blocks" else self.blocks for f in fields(self)
                if f.name != "constraints" and getattr(self, f.name) != f.default}

    def as_identity(self) -> dict[str, str | int]:
        """Every option, defaults included: what a source adds to its encoder's identity."""
        return {f.name: str(getattr(self, f.name)) if f.name != "blocks" else self.blocks for f in fields(self)
                if f.name != "constraints"}

    def apply_to_name(self, name: str, identity: dict) -> tuple[str, dict]:
        """The encoder's name and identity with this choice: rows and tables say which features they hold,
        and so does the cache key."""
        return name + self.suffix(), {**identity, "features": self.as_identity()}

    @property
    def is_default(self) -> bool:
        return not self.chosen()

    @property
    def reads_tokens(self) -> bool:
        return self.pool != Pooling.DEFAULT

    def suffix(self) -> str:
        return "#" + ",".join(f"{k}={v}" for k, v in self.chosen().items()) if not self.is_default else ""


def pool_tokens(blocks: list[torch.Tensor], prefix: int, pool: Pooling) -> torch.Tensor:
    """(N, D * k) features from the token sequences (N, L, D) of the last blocks, oldest first; the
    first `prefix` tokens are the class token (index 0) and any register tokens."""
    cls_tokens = [tokens[:, 0] for tokens in blocks]
    means = [tokens[:, prefix:].mean(dim=1) for tokens in blocks]
    if pool == Pooling.CLS:
        return torch.cat(cls_tokens, dim=1)
    if pool == Pooling.MEAN:
        return torch.cat(means, dim=1)
    return torch.cat([*cls_tokens, means[-1]], dim=1)
