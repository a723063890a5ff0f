"""`hf:ORG/NAME[@REVISION]` or `hf:/path/to/dir`: a Hugging Face `transformers` model through
AutoModel and AutoImageProcessor, from the hub cache (`HF_HOME`) or a `save_pretrained` directory.

- Vision backbones (ViT, DINOv2, BEiT, ConvNeXt, ...): pooled features are the model's pooled output
  where it has one (DINOv2: the layer-normed class token; ConvNeXt: the pooled last stage), else the
  class token; dense features are the patch tokens on their grid (or the last feature map).
- Image-text models (CLIP, SigLIP): pooled features are `get_image_features` (after the projection,
  the space zero-shot needs); the text tower embeds prompts; the logit scale is the model's own.
- Feature options (`#pool=cls+mean,blocks=4`, `#proj=pre`; see `feature_choice`): token pooling over
  the last blocks' hidden states, each passed through the model's final layer norm, for ViT-like
  backbones; the embedding before the projection (the vision tower's pooled output) for CLIP.
Preprocessing is read from the image processor's config. The identity is the weights file's sha256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark.encoders import ENCODER_SOURCES
from benchmark.encoders.base import Encoder
from benchmark.encoders.feature_choice import FeatureChoice, Projection, pool_tokens
from benchmark.errors import MissingDataError, UserError, hub_cache_error
from benchmark.identity import file_sha256
from benchmark.preprocessing import Preprocessing

IMAGE_TEXT = ("clip", "siglip")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
RESAMPLE = {2: "bilinear", 3: "bicubic"}  # PIL's codes, as image processors store them


class VisionTower(nn.Module):
    """A CLIP-style model's image side: the vision transformer's pooled output, then its projection."""

    def __init__(self, vision: nn.Module, projection: nn.Module | None):
        super().__init__()
        self.vision, self.projection = vision, projection

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = self.vision(pixel_values=images).pooler_output
        return self.projection(pooled) if self.projection is not None else pooled


class PooledImages(nn.Module):
    """images -> (N, D) pooled features of a transformers model, as the feature choice says."""

    def __init__(self, model: nn.Module, features: FeatureChoice = FeatureChoice()):
        super().__init__()
        self.model, self.features = model, features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.model.config.model_type in IMAGE_TEXT:
            if self.features.proj == Projection.PRE:
                return self.model.vision_model(pixel_values=images).pooler_output
            return as_tensor(self.model.get_image_features(pixel_values=images))
        if self.features.reads_tokens:
            return self.pooled_tokens(images)
        outputs = self.model(pixel_values=images)
        pooled = getattr(outputs, "pooler_output", None)
        return pooled.flatten(1) if pooled is not None else outputs.last_hidden_state[:, 0]


    def image_module(self) -> nn.Module:
        """What fine-tuning trains: for CLIP-style models the vision tower (and its projection, where the
        features are after it) without the text tower, which DDP would find unused."""
        if self.model.config.model_type not in IMAGE_TEXT:
            return self
        projection = None if self.features.proj == Projection.PRE else self.model.visual_projection
        return VisionTower(self.model.vision_model, projection)

    def pooled_tokens(self, images: torch.Tensor) -> torch.Tensor:
        hidden = self.model(pixel_values=images, output_hidden_states=True).hidden_states[-self.features.blocks:]
        norm = getattr(self.model, "layernorm", None) or nn.Identity()
        prefix = 1 + int(getattr(self.model.config, "num_register_tokens", 0) or 0)
        return pool_tokens([norm(tokens) for tokens in hidden], prefix, self.features.pool)


def check_feature_choice(name: str, config: Any, features: FeatureChoice) -> None:
    image_text = config.model_type in IMAGE_TEXT
    if image_text and features.reads_tokens:
        raise UserError(f"hf:{name}: pool/blocks apply to vision backbones; for {config.model_type} choose proj=pre "
                        f"or proj=post")
    if not image_text and features.proj != Projection.DEFAULT:
        raise UserError(f"hf:{name}: a {config.model_type} model has no projection; proj applies to CLIP/SigLIP")
    if config.model_type == "siglip" and features.proj == Projection.PRE:
        raise UserError(f"hf:{name}: SigLIP's image embedding has no projection after it; proj=pre is CLIP's")
    if features.reads_tokens and getattr(config, "hidden_sizes", None):  # ConvNeXt-like: feature maps, no tokens
        raise UserError(f"hf:{name}: a {config.model_type} has no tokens to pool; pool applies to ViT-like models")


def as_tensor(output: Any) -> torch.Tensor:
    """`get_*_features` return a tensor, or (newer transformers) an output whose pooled field holds it."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def dense_features(model: nn.Module):
    """Patch tokens (prefix tokens dropped) on their 2-D grid, or a CNN's last feature map."""
    def dense(images: torch.Tensor) -> torch.Tensor:
        hidden = model(pixel_values=images).last_hidden_state
        if hidden.ndim == 4:
            return hidden
        side = images.shape[-1] // model.config.patch_size
        tokens = hidden[:, hidden.shape[1] - side * side:]
        return tokens.transpose(1, 2).reshape(len(tokens), -1, side, side)

    return dense


def processor_preprocessing(processor: Any) -> Preprocessing:
    """Our Preprocessing from an image processor's config: resize, centre crop, interpolation, stats."""
    size, crop = getattr(processor, "size", {}) or {}, getattr(processor, "crop_size", None) or {}
    resize = size.get("shortest_edge") or size.get("height") or 224
    input_size = crop.get("height") if getattr(processor, "do_center_crop", False) and crop else resize
    return Preprocessing(input_size=int(input_size), resize_size=int(resize),
                         interpolation=RESAMPLE.get(int(getattr(processor, "resample", 3)), "bicubic"),
                         mean=tuple(processor.image_mean), std=tuple(processor.image_std))


def weights_file(source: str, revision: str | None) -> Path:
    from transformers.utils import cached_file

    for name in WEIGHT_FILES:
        found = cached_file(source, name, revision=revision, _raise_exceptions_for_missing_entries=False)
        if found:
            return Path(found)
    raise not_found_error(source)


def not_found_error(source: str) -> MissingDataError:
    return hub_cache_error(f"hf:{source}: no model weights found, neither as a directory nor in the cache, and "
                           f"nothing could be downloaded (offline?)",
                           f"`huggingface-cli download {source}` (or `python -c \"import transformers; "
                           f"transformers.AutoModel.from_pretrained('{source}')\"`)")


def load_parts(source: str, revision: str | None) -> tuple[nn.Module, Any]:
    from transformers import AutoImageProcessor, AutoModel

    try:
        model = AutoModel.from_pretrained(source, revision=revision).eval()
        processor = AutoImageProcessor.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as err:
        if "offline" in str(err).lower() or "couldn't connect" in str(err).lower() or "not found" in str(err):
            raise not_found_error(source) from None
        raise UserError(f"hf:{source} could not be loaded by transformers: {str(err).splitlines()[0]}") from None
    if hasattr(model.config, "mask_ratio"):  # ViT-MAE: evaluate on every patch, none masked
        model.config.mask_ratio = 0.0
    return model, processor


def text_tower(source: str, revision: str | None, model: nn.Module):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)

    def encode(prompts: list[str]) -> torch.Tensor:
        tokens = tokenizer(prompts, padding="max_length" if model.config.model_type == "siglip" else True,
                           truncation=True, return_tensors="pt").to(model.device)
        return as_tensor(model.get_text_features(**tokens))

    return encode


@ENCODER_SOURCES.register("hf")
def build(name: str, weights: Path | None, features: FeatureChoice = FeatureChoice()) -> Encoder:
    if weights is not None:
        raise UserError(f"hf:{name}: give a directory (hf:/path/to/dir) or a hub name (hf:ORG/NAME@REVISION), not a "
                        f"weights file after '@'")
    if name.startswith(("/", ".", "~")) and not Path(name).expanduser().is_dir():
        raise MissingDataError(f"hf:{name}: no such directory; give a save_pretrained directory or a hub name "
                               f"(hf:ORG/NAME[@REVISION])")
    source, _, revision = name.partition("@") if not Path(name).expanduser().is_dir() else (name, "", "")
    model, processor = load_parts(source, revision or None)
    check_feature_choice(name, model.config, features)
    path = weights_file(source, revision or None)
    identity = {"source": "hf", "model_type": model.config.model_type, "weights_sha256": file_sha256(path),
                "config_sha256": hashlib.sha256(model.config.to_json_string().encode()).hexdigest()}
    image_text = model.config.model_type in IMAGE_TEXT
    text_space = image_text and features.proj != Projection.PRE  # zero-shot compares in the projected space
    label, identity = features.apply_to_name(f"hf:{name}", identity)
    return Encoder(label, PooledImages(model, features), processor_preprocessing(processor), identity,
                   load_report=[f"transformers {model.config.model_type} weights from {path}"],
                   dense_fn=None if image_text else dense_features(model),
                   text_fn=text_tower(source, revision or None, model) if text_space else None,
                   logit_scale=float(model.logit_scale.detach().exp()) if text_space else None)
