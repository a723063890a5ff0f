"""Zero-shot image-text retrieval (CLIP_benchmark's `zeroshot_retrieval`; Flickr30k and COCO Karpathy test).

The encoder's text tower embeds every caption; captions and the cached image features are L2-normalised
and compared by cosine similarity. Images retrieve captions and captions retrieve images; recall@k counts
a query as found when one of its positives (an image's captions; a caption's image) is among its k most
similar (`metrics.image_text_recalls`). Nothing is trained. The headline is the mean of the six recalls
(recall@1/5/10 both ways: RSUM / 6); each is kept in the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from benchmark.errors import UserError
from benchmark.metrics import image_text_recalls
from benchmark.params import CheckedParams, Constraints, Each, Interval
from benchmark.protocols import PROTOCOLS
from benchmark.protocols.base import FeatureTask, Protocol, ProtocolResult, TextTower, check_finite, unit_rows
from benchmark.vocab import FeatureKind, Metric, TaskType


def embed_texts(tower: TextTower, texts: tuple[str, ...], batch_size: int) -> np.ndarray:
    """(captions, D) text embeddings, `batch_size` captions per forward pass."""
    with torch.inference_mode():
        parts = [torch.as_tensor(tower.encode_text(list(texts[i:i + batch_size]))).float().cpu().numpy()  # device: brought to the CPU in the same line
                 for i in range(0, len(texts), batch_size)]
    return np.concatenate(parts)


@PROTOCOLS.register
class ImageTextRetrieval(Protocol):
    name = "image_text"
    version = "1.0"
    requires = (FeatureKind.POOLED, FeatureKind.TEXT)
    tasks = (TaskType.IMAGE_TEXT,)

    @dataclass(frozen=True)
    class Params(CheckedParams):
        ks: tuple[int, ...] = (1, 5, 10)
        text_batch_size: int = 256
        constraints: ClassVar[Constraints] = {"ks": Each(Interval(int, 1)), "text_batch_size": Interval(int, 1)}

    def evaluate(self, data: FeatureTask) -> ProtocolResult:
        check_finite(data)
        if data.text is None:
            raise UserError("image-text retrieval needs an encoder with a text tower (open_clip, hf: CLIP, or a "
                            "LiT checkpoint)")
        images = data.test if len(data.test) else data.trainval  # a caption set is one split (a single pool)
        rows = np.asarray(images.y)
        if not data.texts or rows.ndim != 2 or rows.max(initial=-1) >= len(data.texts):
            raise UserError(f"dataset {data.dataset!r} gives {len(data.texts)} captions for its images' caption "
                            f"rows; an image-text dataset declares `texts` that its labels index")
        captions = embed_texts(data.text, data.texts, self.params.text_batch_size)
        recalls = image_text_recalls(rows, unit_rows(images.x) @ unit_rows(captions).T, self.params.ks)
        return ProtocolResult(value=float(np.mean(list(recalls.values()))), metric=Metric.MEAN_RECALL,
                              details=recalls | {"images": len(rows), "captions": len(data.texts)})
