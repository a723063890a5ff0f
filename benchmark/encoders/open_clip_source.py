"""`open_clip:ARCH[@WEIGHTS]`, `open_clip:ARCH:TAG` and `open_clip:hf-hub:ORG/NAME`: an open_clip
image-text model from a local weights file, or with open_clip's pretrained weights for a tag (e.g.
`ViT-B-32:laion2b_s34b_b79k`) or a hub repository, through open_clip's own downloader and its caches
(the Hugging Face hub cache, or ~/.cache/clip for URL weights). The identity is the resolved file's
sha256, as for a local file.

Pooled features are the image tower's embedding (`encode_image`); the text tower embeds prompts for
zero-shot classification; `logit_scale` is the model's learned temperature. Preprocessing follows the
model's config (image size, mean/std, bicubic resize of the shorter side, centre crop). `#proj=pre`
reads a ViT image tower's pooled output before its projection (zero-shot then has no shared space and
is skipped); see `feature_choice`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from benchmark.encoders import ENCODER_SOURCES
from benchmark.encoders.base import Encoder
from benchmark.encoders.feature_choice import FeatureChoice, Projection
from benchmark.seeding import seeded_init
from benchmark.encoders.weights import extract_state_dict, load_into, safe_load
from benchmark.identity import file_sha256
from benchmark.errors import MissingDataError, UserError, hub_cache_error
from benchmark.preprocessing import Preprocessing
from benchmark.registry import unknown_name_message


class ImageTower(nn.Module):
    def __init__(self, clip: nn.Module):
        super().__init__()
        self.clip = clip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(images)

    def image_module(self) -> nn.Module:
        """What fine-tuning trains: the image tower alone (encode_image is visual(images)); the text
        tower and logit scale would sit unused in DDP and fail its reduction."""
        return self.clip.visual


def clip_preprocessing(clip: nn.Module) -> Preprocessing:
    size = clip.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    return Preprocessing(input_size=int(size), resize_size=int(size), interpolation="bicubic",
                         mean=tuple(clip.visual.image_mean), std=tuple(clip.visual.image_std))


def resolve_pretrained(name: str) -> tuple[str, Path]:
    """(architecture or hf-hub name, weights file) for `ARCH:TAG` or `hf-hub:ORG/NAME`, from open_clip's
    caches (downloaded there first when online); one message naming the fix when that fails."""
    import open_clip
    from open_clip import pretrained

    if name.startswith("hf-hub:"):
        repo = name[len("hf-hub:"):]
        return name, cached_file(name, lambda: pretrained.download_pretrained_from_hf(repo))
    arch, _, tag = name.partition(":")
    if arch not in open_clip.list_models():
        raise UserError(unknown_name_message("open_clip architecture", arch, open_clip.list_models()))
    cfg = pretrained.get_pretrained_cfg(arch, tag)
    if not cfg:
        raise UserError(f"open_clip {arch}: " + unknown_name_message(
            "pretrained tag", tag, open_clip.list_pretrained_tags_by_model(arch) or ["(none)"]))
    return arch, cached_file(name, lambda: pretrained.download_pretrained(cfg))


def cached_file(name: str, download) -> Path:
    try:
        found = download()
    except (OSError, ValueError, RuntimeError) as err:  # offline and not cached, or the download failed
        raise not_cached_error(name, err) from None
    if not found:
        raise not_cached_error(name, "no weights location in open_clip's pretrained table")
    return Path(found)


def not_cached_error(name: str, cause: object) -> MissingDataError:
    arch, _, tag = name.partition(":")
    call = f"open_clip.create_model('{name}')" if name.startswith("hf-hub:") else \
        f"open_clip.create_model('{arch}', pretrained='{tag}')"
    return hub_cache_error(f"open_clip weights {name!r} are not cached (URL weights: ~/.cache/clip) and could not "
                           f"be downloaded ({str(cause).splitlines()[0][:120]})",
                           f"`python -c \"import open_clip; {call}\"`",
                           f" Or give a weights file: open_clip:{arch}@/path/to/weights")


def clip_encoder(label: str, clip: nn.Module, name: str, identity: dict, random_init: bool, report: list[str]
                 ) -> Encoder:
    import open_clip

    clip.eval()
    tokenizer = open_clip.get_tokenizer(name)
    return Encoder(label, ImageTower(clip), clip_preprocessing(clip), identity, random_init=random_init,
                   load_report=report, text_fn=lambda prompts: clip.encode_text(tokenizer(prompts).to(clip.logit_scale.device)),
                   logit_scale=float(clip.logit_scale.detach().exp()))


def with_feature_choice(encoder: Encoder, name: str, features: FeatureChoice) -> Encoder:
    if features.reads_tokens:
        raise UserError(f"open_clip:{name}: pool/blocks are not offered for open_clip towers; choose proj=pre or "
                        f"proj=post")
    if features.proj == Projection.PRE:
        visual = encoder.model.clip.visual
        if getattr(visual, "proj", None) is None:
            raise UserError(f"open_clip:{name}: this image tower has no separate projection to read before")
        visual.proj = None  # the tower now returns its pooled, normalised token: the pre-projection embedding
        encoder.text_fn = encoder.logit_scale = None  # text lives in the projected space only
    encoder.name, encoder.identity = features.apply_to_name(encoder.name, encoder.identity)
    return encoder


def pretrained_encoder(name: str) -> Encoder:
    import open_clip

    model_name, path = resolve_pretrained(name)
    pretrained = None if model_name.startswith("hf-hub:") else str(path)  # hf-hub: open_clip reads its own config
    clip = open_clip.create_model(model_name, pretrained=pretrained)
    arch = model_name if pretrained else model_name[len("hf-hub:"):]
    identity = {"source": "open_clip", "arch": arch, "weights_sha256": file_sha256(path)}
    return clip_encoder(f"open_clip:{name}", clip, model_name, identity, False,
                        [f"open_clip pretrained weights {name} from {path}"])


@ENCODER_SOURCES.register("open_clip")
def build(name: str, weights: Path | None, features: FeatureChoice = FeatureChoice()) -> Encoder:
    return with_feature_choice(build_tower(name, weights), name, features)


def build_tower(name: str, weights: Path | None) -> Encoder:
    import open_clip

    if weights is None and (":" in name):
        return pretrained_encoder(name)
    if name not in open_clip.list_models():
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
    return clip_encoder(f"open_clip:{name}" + (f"@{weights.name}" if weights else ""), clip, name, identity,
                        weights is None, report)
