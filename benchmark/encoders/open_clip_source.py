"""`open_clip:ARCH[@WEIGHTS]`: an open_clip image-text model from a local weights file (never a hub).

Pooled features are the image tower's embedding (`encode_image`); the text tower embeds prompts for
zero-shot classification; `logit_scale` is the model's learned temperature. Preprocessing follows the
model's config (image size, mean/std, bicubic resize of the shorter side, centre crop).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from benchmark.encoders import ENCODER_SOURCES
from benchmark.encoders.base import Encoder
from benchmark.seeding import seeded_init
from benchmark.encoders.weights import extract_state_dict, file_sha256, load_into, safe_load
from benchmark.errors import UserError
from benchmark.preprocessing import Preprocessing


class ImageTower(nn.Module):
    def __init__(self, clip: nn.Module):
        super().__init__()
        self.clip = clip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(images)


def clip_preprocessing(clip: nn.Module) -> Preprocessing:
    size = clip.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    return Preprocessing(input_size=int(size), resize_size=int(size), interpolation="bicubic",
                         mean=tuple(clip.visual.image_mean), std=tuple(clip.visual.image_std))


@ENCODER_SOURCES.register("open_clip")
def build(name: str, weights: Path | None) -> Encoder:
    import open_clip

    if name not in open_clip.list_models():
        from benchmark.registry import unknown_name_message

        raise UserError(unknown_name_message("open_clip architecture", name, open_clip.list_models()))
    clip = seeded_init(lambda: open_clip.create_model(name, pretrained=None))
    identity = {"source": "open_clip", "arch": name}
    report = []
    if weights is not None:
        state = extract_state_dict(safe_load(weights), weights)
        report = load_into(clip, state, name, weights).lines()
        identity["weights_sha256"] = file_sha256(weights)
    else:
        identity["init_seed"] = 0
    clip.eval()
    tokenizer = open_clip.get_tokenizer(name)
    return Encoder(f"open_clip:{name}" + (f"@{weights.name}" if weights else ""), ImageTower(clip),
                   clip_preprocessing(clip), identity, random_init=weights is None, load_report=report,
                   text_fn=lambda prompts: clip.encode_text(tokenizer(prompts)),
                   logit_scale=float(clip.logit_scale.detach().exp()))
