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


# Queries ranked at once: a multiple of FAISS's own BLAS query block (4,096), so blocking changes no query's
# GEMM (a tail block under FAISS's BLAS threshold, 20 queries, is searched by its SIMD loop instead). Memory
# holds one block's (block, depth) neighbours and precisions, not (n, depth) of them.
QUERY_BLOCK = 16384


def flat_index(features: np.ndarray):
    """An exact inner-product FAISS index of the L2-normalised rows, and those rows."""
    import faiss

    x = np.ascontiguousarray(unit_rows(features))
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    return index, x


def ranked_neighbours(index, x: np.ndarray, rows: slice, k: int) -> np.ndarray:
    """Indices (rows, k) of each queried row's k most similar other rows, best first (itself removed)."""
    _, found = index.search(x[rows], min(k + 1, len(x)))
    drop = found == np.arange(len(x))[rows][:, None]  # the query itself...
    drop[~drop.any(1), -1] = True  # ...or, where exact duplicates pushed it out, the last one found
    return found[~drop].reshape(len(found), -1)[:, :k]


def retrieval_scores(features: np.ndarray, labels: np.ndarray, ks: tuple[int, ...]) -> dict[str, object]:
    """recall@k and mAP@R over every query, computed block by block of `QUERY_BLOCK` queries."""
    labels = np.asarray(labels)
    same_class = np.bincount(labels, minlength=labels.max() + 1)[labels] - 1  # R of each query
    queries = same_class > 0
    depth = int(max(max(ks), same_class.max()))
    index, x = flat_index(features)
    hits = {k: np.zeros(len(x), bool) for k in (1, *ks)}
    ap_at_r = np.zeros(len(x))
    for start in range(0, len(x), QUERY_BLOCK):
        rows = slice(start, min(start + QUERY_BLOCK, len(x)))
        relevant = labels[ranked_neighbours(index, x, rows, depth)] == labels[rows, None]
        for k in hits:
            hits[k][rows] = relevant[:, :k].any(1)
        ranks = np.arange(1, relevant.shape[1] + 1)
        within_r = ranks[None, :] <= same_class[rows, None]
        precision = np.cumsum(relevant, axis=1) / ranks
        ap_at_r[rows] = (precision * relevant * within_r).sum(1) / np.maximum(same_class[rows], 1)
    scores: dict[str, object] = {f"recall@{k}": 100.0 * float(hits[k][queries].mean()) for k in ks}
    scores["map@r"] = 100.0 * float(ap_at_r[queries].mean())
    scores["queries"] = int(queries.sum())
    scores["top1_relevant"] = hits[1][queries]
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
