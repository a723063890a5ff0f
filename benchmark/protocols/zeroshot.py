"""CLIP-style zero-shot classification (Radford et al. 2021; open_clip's zero-shot classifier).

For each class, every template is filled with the class name and embedded by the encoder's text tower;
the embeddings are L2-normalised, averaged over templates and renormalised. Test images' embeddings are
L2-normalised; logits = logit_scale x cosine similarity. Nothing is trained, so only the test split is
used. Reports top-1, top-5 (more than 5 classes) and mean per-class accuracy; the headline follows the
dataset's metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from benchmark.errors import UserError
from benchmark.metrics import mean_per_class, score, top1
from benchmark.protocols import PROTOCOLS
from benchmark.prompts import templates_for
from benchmark.params import CheckedParams, Constraints, Each, Optional, Text
from benchmark.protocols.base import FeatureTask, Protocol, ProtocolResult, check_finite, restricted
from benchmark.vocab import FeatureKind, TaskType


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def zero_shot_classifier(text_fn, class_names: tuple[str, ...], templates: tuple[str, ...]) -> torch.Tensor:
    """(classes, D): per class, the renormalised mean of its L2-normalised template embeddings."""
    rows = []
    for name in class_names:
        embeddings = l2_normalize(torch.as_tensor(text_fn([t.format(name) for t in templates])).float().cpu())  # device: small: zero-shot runs on the CPU
        rows.append(l2_normalize(embeddings.mean(0)))
    return torch.stack(rows)


def zero_shot_logits(image_features: np.ndarray, classifier: torch.Tensor, logit_scale: float) -> np.ndarray:
    images = l2_normalize(torch.as_tensor(np.asarray(image_features), dtype=torch.float32))  # device: with the classifier
    return (logit_scale * images @ classifier.T).numpy()


def top_k_accuracy(labels: np.ndarray, logits: np.ndarray, k: int) -> float:
    top = np.argsort(-logits, axis=1)[:, :k]
    return 100.0 * float(np.mean((top == labels[:, None]).any(1)))


@PROTOCOLS.register
class ZeroShot(Protocol):
    name = "zeroshot"
    version = "1.0"
    requires = (FeatureKind.POOLED, FeatureKind.TEXT)
    tasks = (TaskType.MULTICLASS,)
    restricts_classes = True

    @dataclass(frozen=True)
    class Params(CheckedParams):
        templates: tuple[str, ...] | None = None  # default: CLIP's templates for the dataset
        constraints: ClassVar[Constraints] = {"templates": Optional(Each(Text(must_contain="{}")))}

    def evaluate(self, data: FeatureTask) -> ProtocolResult:
        check_finite(data)
        if not data.class_names or len(data.class_names) != data.num_classes:
            raise UserError(f"zero-shot needs one name per class; dataset {data.dataset!r} declares "
                            f"{len(data.class_names)} names for {data.num_classes} classes")
        if data.text is None:
            raise UserError("zero-shot needs an encoder with a text tower (open_clip, hf: CLIP, or a LiT checkpoint)")
        templates = self.params.templates or templates_for(data.dataset)
        classifier = zero_shot_classifier(data.text.encode_text, data.class_names, templates)
        logits = restricted(zero_shot_logits(data.test.x, classifier, data.text.logit_scale or 1.0), data.test_classes)
        labels = np.asarray(data.test.y)
        predictions = logits.argmax(1)
        details = {"top1": top1(labels, predictions), "mean_per_class": mean_per_class(labels, predictions),
                   "templates": len(templates), "logit_scale": data.text.logit_scale}
        if data.num_classes > 5:
            details["top5"] = top_k_accuracy(labels, logits, 5)
        return ProtocolResult(value=score(data.metric, labels, logits), metric=data.metric, details=details)
