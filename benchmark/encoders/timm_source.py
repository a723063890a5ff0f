"""`timm:ARCH[.TAG][@WEIGHTS]` and `timm:hf-hub:ORG/NAME`: any timm model, head removed, with the
preprocessing of its pretrained config.

- `timm:resnet50` (no tag, no file): the architecture with random weights (a baseline, announced).
- `timm:vit_small_patch14_dinov2.lvd142m` (a pretrained tag) or `timm:hf-hub:timm/resnet18.a1_in1k`:
  timm's pretrained weights through timm's own loader and the Hugging Face hub cache (`HF_HOME`),
  downloaded once when online, read from the cache offline.
- `timm:resnet50@/path/w.pth`: a weights file of the user's (prefixes stripped, head ignored).

The encoder's identity is the architecture and the resolved weights file's sha256, however the file
was reached, so a file, a tag and an hf-hub name holding the same weights share cache entries.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from benchmark.backbones import create_headless, timm_dense, timm_preprocessing
from benchmark.encoders import ENCODER_SOURCES
from benchmark.encoders.base import Encoder, encoder_from_file
from benchmark.encoders.feature_choice import FeatureChoice, Projection, pool_tokens
from benchmark.identity import file_sha256
from benchmark.errors import MissingDataError, UserError, hub_cache_error
from benchmark.registry import unknown_name_message
from benchmark.seeding import seeded_init

HF_HUB = "hf-hub:"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm's hub loader looks for, in order


def is_pretrained_name(name: str) -> bool:
    """A pretrained tag (`arch.tag`) or an hf-hub name: weights come from timm's loader."""
    return name.startswith(HF_HUB) or "." in name


def hub_repo(name: str) -> tuple[str, str | None]:
    """(repository, revision) of the weights on the Hugging Face hub for a tag or an hf-hub name."""
    import timm
    from timm.models import get_pretrained_cfg

    if name.startswith(HF_HUB):
        repo, _, revision = name[len(HF_HUB):].partition("@")
        return repo, revision or None
    if not timm.is_model(name.split(".")[0]):
        raise UserError(unknown_name_message("timm architecture", name.split(".")[0], timm.list_models()))
    cfg = get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        raise UserError(f"timm has no hub weights for {name!r}; list its tags with "
                        f"`python -c \"import timm; print(timm.list_pretrained('{name.split('.')[0]}*'))\"`")
    repo, _, revision = cfg.hf_hub_id.partition("@")
    return repo, revision or None


def cached_weights(name: str) -> Path:
    """The weights file timm's loader reads, from the hub cache (downloaded there first when online)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    repo, revision = hub_repo(name)
    for filename in WEIGHT_FILES:
        try:
            return Path(hf_hub_download(repo, filename, revision=revision))
        except EntryNotFoundError:  # not in the repository, or (LocalEntryNotFoundError) not cached offline
            continue
    raise not_cached_error(name, repo)


def not_cached_error(name: str, repo: str) -> MissingDataError:
    return hub_cache_error(f"timm weights {name!r} are not cached and could not be downloaded (offline?)",
                           f"`python -c \"import timm; timm.create_model('{name}', pretrained=True)\"` (or "
                           f"`huggingface-cli download {repo}`)",
                           f" Or give a weights file: timm:{name.split('.')[0]}@/path/to/weights")


def pretrained_encoder(name: str) -> Encoder:
    path = cached_weights(name)
    model = create_headless(name, pretrained_file=path)
    arch = model.default_cfg.get("architecture", name.split(".")[0])
    identity = {"source": "timm", "arch": arch, "weights_sha256": file_sha256(path)}
    return Encoder(f"timm:{name}", model, timm_preprocessing(model), identity,
                   load_report=[f"timm pretrained weights {name} from {path}"], dense_fn=timm_dense(model))


class PooledTokens(nn.Module):
    """A timm ViT read as the feature choice says: the last blocks' tokens (through the final norm, as
    `get_intermediate_layers(norm=True)` gives them), pooled."""

    def __init__(self, model: nn.Module, features: FeatureChoice):
        super().__init__()
        self.model, self.features = model, features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        blocks = self.model.get_intermediate_layers(images, n=self.features.blocks, return_prefix_tokens=True,
                                                    norm=True)
        tokens = [torch.cat([prefix, patches], dim=1) for patches, prefix in blocks]
        return pool_tokens(tokens, self.model.num_prefix_tokens, self.features.pool)


def with_feature_choice(encoder: Encoder, name: str, features: FeatureChoice) -> Encoder:
    if features.proj != Projection.DEFAULT:
        raise UserError(f"timm:{name}: timm image models have no projection; proj applies to CLIP-style models")
    if features.reads_tokens:
        if not hasattr(encoder.model, "get_intermediate_layers") or not hasattr(encoder.model, "num_prefix_tokens"):
            raise UserError(f"timm:{name}: pool/blocks read a ViT's tokens; this architecture has none")
        encoder.model = PooledTokens(encoder.model, features)
    encoder.name, encoder.identity = features.apply_to_name(encoder.name, encoder.identity)
    return encoder


@ENCODER_SOURCES.register("timm")
def build(name: str, weights: Path | None, features: FeatureChoice = FeatureChoice()) -> Encoder:
    if weights is None and is_pretrained_name(name):
        return with_feature_choice(pretrained_encoder(name), name, features)
    model = seeded_init(lambda: create_headless(name))
    arch = name.split(".")[0]  # a tag with a file of the user's: the tag gives the preprocessing only
    encoder = encoder_from_file("timm", arch, model, weights, timm_preprocessing(model))
    return with_feature_choice(encoder, name, features)
