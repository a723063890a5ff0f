"""`checkpoint:PATH`: a self-describing checkpoint written by this project (e.g. by `pretrain`).

It is a plain dict (loadable with weights_only=True): the format tag, the architecture and its
source, the backbone state dict, the preprocessing for evaluation, and free-form metadata (method,
training config, data seen, loss curve).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from benchmark.atomic import write_atomically
from benchmark.backbones import HEADLESS_BUILDERS, timm_dense
from benchmark.encoders import ENCODER_SOURCES
from benchmark.encoders.base import Encoder
from benchmark.encoders.weights import load_into, safe_load
from benchmark.identity import file_sha256
from benchmark.errors import UserError
from benchmark.preprocessing import Preprocessing

FORMAT = "transferbench.checkpoint"
FORMAT_VERSION = 1
ARCH_SOURCES = ("timm", "torchvision")


def save_checkpoint(path: str | Path, *, arch: str, state_dict: dict[str, torch.Tensor],
                    preprocessing: Preprocessing, arch_source: str = "timm", arch_kwargs: dict[str, Any] | None = None,
                    head: dict[str, Any] | None = None, **metadata: Any) -> Path:
    """Write atomically (temp file, then rename) so a crash never leaves a half-written checkpoint.

    `arch_kwargs` rebuild the architecture (e.g. small_stem, a ViT's img_size); `head` holds what an
    image-text model keeps besides the backbone (projection, logit_scale, text_tower)."""
    path = Path(path)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "arch": arch, "arch_source": arch_source,
               "arch_kwargs": arch_kwargs or {}, "head": head or {},
               "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
               "preprocessing": preprocessing.as_dict(), "metadata": metadata}
    write_atomically(path, lambda tmp: torch.save(payload, tmp))
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    payload = safe_load(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not a transferbench checkpoint (no format={FORMAT!r} tag). For a plain state "
                        f"dict use timm:ARCH@{path} or torchvision:ARCH@{path}.")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise UserError(f"{path} was written by a newer transferbench (checkpoint format "
                        f"{payload['format_version']} > {FORMAT_VERSION}); upgrade transferbench.")
    if payload.get("arch_source") not in ARCH_SOURCES:
        raise UserError(f"{path}: unknown arch_source {payload.get('arch_source')!r}; expected one of {ARCH_SOURCES}")
    return payload


@ENCODER_SOURCES.register("checkpoint")
def build(name: str, weights: Path | None) -> Encoder:
    path = Path(weights or name)
    payload = read_checkpoint(path)
    arch, source = payload["arch"], payload["arch_source"]
    if source not in HEADLESS_BUILDERS:
        raise UserError(f"checkpoint {path} names architecture source {source!r}; this version reads "
                        f"{', '.join(HEADLESS_BUILDERS)}")
    model = HEADLESS_BUILDERS[source](arch, **payload.get("arch_kwargs", {}))
    report = load_into(model, payload["state_dict"], arch, path)
    preprocessing = Preprocessing(**{k: tuple(v) if isinstance(v, list) else v
                                     for k, v in payload["preprocessing"].items()})
    identity = {"source": "checkpoint", "arch_source": source, "arch": arch, "weights_sha256": file_sha256(path)}
    dense = timm_dense(model) if source == "timm" else None
    encoder = Encoder(f"checkpoint:{path.stem}", model, preprocessing, identity, load_report=report.lines(),
                      dense_fn=dense, random_init=bool(payload["metadata"].get("random_init", False)))
    head = payload.get("head", {})
    return with_text_tower(encoder, head) if "text_tower" in head else encoder


def with_text_tower(encoder: Encoder, head: dict[str, Any]) -> Encoder:
    """An image-text checkpoint (LiT): pooled features go through the learned projection into the
    text tower's space; the frozen text tower embeds prompts for zero-shot."""
    from benchmark.encoders.text_towers import load_text_tower

    projection = torch.nn.Linear(*reversed(head["projection"]["weight"].shape))
    projection.load_state_dict(head["projection"])
    encoder.model = torch.nn.Sequential(encoder.model, projection).eval()
    encoder.text_fn = load_text_tower(head["text_tower"])
    encoder.logit_scale = float(head["logit_scale"])
    encoder.load_report = [*encoder.load_report, f"image-text model: projection to {projection.out_features}-d, "
                           f"text tower {head['text_tower']}"]
    return encoder
