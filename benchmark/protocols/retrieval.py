"""Class-based retrieval on one labelled split of cached features (no training).

Every test image queries all other test images by cosine similarity (FAISS exact inner product on
L2-normalised features; the query itself is excluded). An item is relevant when it has the query's class.
- recall@k (metric-learning usage, e.g. Musgrave et al. 2020): 1 if any of the k nearest is relevant.
- mAP@R (Musgrave et al., "A Metric Learning Reality Check", ECCV 2020): R = the number of other items of
  the query's class; AP@R = (1/R) sum_{i<=R} P(i) rel(i), P(i) the precision among the first i.
Both are averaged over queries (queries whose class has no other item are left out). recall@1 is the
headline; whether each query's nearest neighbour was relevant is kept for CIs and paired tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from benchmark.outputs import PerExample
from benchmark.params import CheckedParams, Constraints, Each, Interval
from benchmark.protocols import PROTOCOLS
from benchmark.protocols.base import (FeatureTask, Protocol, ProtocolResult, check_finite, require_test_split,
                                     unit_rows)
from benchmark.vocab import Metric, TaskType


def ranked_neighbours(features: np.ndarray, k: int) -> np.ndarray:
    """Indices (n, k) of each row's k most similar other rows, best first (the row itself removed)."""
    import faiss

    x = np.ascontiguousarray(unit_rows(features))
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    _, found = index.search(x, min(k + 1, len(x)))
    drop = found == np.arange(len(x))[:, None]  # the query itself...
    drop[~drop.any(1), -1] = True  # ...or, where exact duplicates pushed it out, the last one found
    return found[~drop].reshape(len(x), -1)[:, :k]


def retrieval_scores(features: np.ndarray, labels: np.ndarray, ks: tuple[int, ...]) -> dict[str, object]:
    labels = np.asarray(labels)
    same_class = np.bincount(labels, minlength=labels.max() + 1)[labels] - 1  # R of each query
    queries = same_class > 0
    depth = int(max(max(ks), same_class.max()))
    relevant = labels[ranked_neighbours(features, depth)] == labels[:, None]
    scores: dict[str, object] = {f"recall@{k}": 100.0 * float(relevant[queries, :k].any(1).mean()) for k in ks}
    ranks = np.arange(1, depth + 1)
    precision = np.cumsum(relevant, axis=1) / ranks
    within_r = ranks[None, :] <= same_class[:, None]
    ap_at_r = (precision * relevant * within_r).sum(1) / np.maximum(same_class, 1)
    scores["map@r"] = 100.0 * float(ap_at_r[queries].mean())
    scores["queries"] = int(queries.sum())
    scores["top1_relevant"] = relevant[queries, 0]
    return scores


@PROTOCOLS.register
class ClassRetrieval(Protocol):
    name = "retrieval"
    version = "1.0"
    tasks = (TaskType.MULTICLASS,)

    @dataclass(frozen=True)
    class Params(CheckedParams):
        ks: tuple[int, ...] = (1, 5, 10)
        constraints: ClassVar[Constraints] = {"ks": Each(Interval(int, 1, 10_000))}

    def evaluate(self, data: FeatureTask) -> ProtocolResult:
        check_finite(data)
        require_test_split(data, self.name)
        scores = retrieval_scores(np.asarray(data.test.x), np.asarray(data.test.y), tuple(self.params.ks))
        hits = scores.pop("top1_relevant")
        return ProtocolResult(value=100.0 * float(hits.mean()), metric=Metric.RECALL_AT_1,
                              details=scores, per_example=PerExample(test_correct=hits))
