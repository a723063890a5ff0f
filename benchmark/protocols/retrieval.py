"""Class-based retrieval on cached features (no training).

Test images are the queries, ranked by cosine similarity (FAISS exact inner product on L2-normalised
features). An item is relevant when it has the query's class. What they search, `database`:
- `test` (default): all other test images (the query itself is excluded), as metric-learning papers do;
- `train`: the train and val images, the gallery a model was trained on (ImageNet: 50,000 queries against
  1.28M), searched chunk by chunk with each chunk's top merged into the running top, as k-NN does, so
  memory holds one gallery chunk and one query block's neighbours, never the gallery normalised whole.
- recall@k (metric-learning usage, e.g. Musgrave et al. 2020): 1 if any of the k nearest is relevant.
- mAP@R (Musgrave et al., "A Metric Learning Reality Check", ECCV 2020): R = the number of relevant items
  in the database; AP@R = (1/R) sum_{i<=R} P(i) rel(i), P(i) the precision among the first i.
Both are averaged over queries (queries without a relevant item are left out). recall@1 is the headline;
whether each query's nearest neighbour was relevant is kept for CIs and paired tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import numpy as np

from benchmark.outputs import PerExample
from benchmark.params import CheckedParams, Constraints, Each, Interval, Options
from benchmark.protocols import PROTOCOLS
from benchmark.protocols._neighbours import nearest_neighbours
from benchmark.protocols.base import (Features, FeatureTask, Protocol, ProtocolResult, Rows, check_finite,
                                     require_test_split, unit_rows)
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


class Database(StrEnum):
    """What the test queries search."""

    TEST = "test"  # the other test images
    TRAIN = "train"  # the train and val images (a separate gallery)


GALLERY_BLOCK_BYTES = 1 << 28  # a query block's neighbours and precisions, when the gallery is separate
GALLERY_CHUNK = None  # gallery rows searched at once: None, knn's 256 MB chunks


def self_search_blocks(features: np.ndarray, depth: int):
    """(query rows, their neighbours' positions) block by block, each test image against the other ones."""
    index, x = flat_index(features)
    for start in range(0, len(x), QUERY_BLOCK):
        rows = slice(start, min(start + QUERY_BLOCK, len(x)))
        yield rows, ranked_neighbours(index, x, rows, depth)


def gallery_search_blocks(queries: np.ndarray, gallery: np.ndarray, depth: int):
    """(query rows, their nearest gallery positions) block by block; blocks sized so one block's neighbours
    and precisions stay within GALLERY_BLOCK_BYTES, the gallery streamed in chunks (knn's exact search)."""
    block = max(1, min(QUERY_BLOCK, GALLERY_BLOCK_BYTES // (24 * depth)))
    for start in range(0, len(queries), block):
        rows = slice(start, min(start + block, len(queries)))
        yield rows, nearest_neighbours(gallery, queries[rows], depth, chunk=GALLERY_CHUNK)[1]


def retrieval_scores(features: np.ndarray, labels: np.ndarray, ks: tuple[int, ...],
                     gallery: Features | None = None) -> dict[str, object]:
    """recall@k and mAP@R over every query, computed block by block; `gallery`: a separate database (the
    queries are then not part of it), else every query searches the other queries."""
    labels = np.asarray(labels)
    classes = int(max(labels.max(), gallery.y.max() if gallery is not None else 0)) + 1
    if gallery is None:
        database_labels, same_class = labels, np.bincount(labels, minlength=classes)[labels] - 1  # R per query
    else:
        database_labels = np.asarray(gallery.y)
        same_class = np.bincount(database_labels, minlength=classes)[labels]
    queries = same_class > 0
    depth = int(min(max(max(ks), same_class.max()), len(database_labels) - (gallery is None)))
    blocks = (self_search_blocks(features, depth) if gallery is None
              else gallery_search_blocks(np.asarray(features), gallery.x, depth))
    hits = {k: np.zeros(len(labels), bool) for k in (1, *ks)}
    ap_at_r = np.zeros(len(labels))
    for rows, neighbours in blocks:
        relevant = database_labels[neighbours] == labels[rows, None]
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
        database: Database = Database.TEST
        constraints: ClassVar[Constraints] = {"ks": Each(Interval(int, 1, 10_000)), "database": Options(*Database)}
        added_later: ClassVar[tuple[str, ...]] = ("database",)

    def evaluate(self, data: FeatureTask) -> ProtocolResult:
        check_finite(data)
        require_test_split(data, self.name)
        gallery = None
        if self.params.database == Database.TRAIN:
            gallery = Features(Rows([data.train.x, data.val.x]), np.concatenate([data.train.y, data.val.y]))
        scores = retrieval_scores(data.test.x, np.asarray(data.test.y), tuple(self.params.ks), gallery)
        hits = scores.pop("top1_relevant")
        return ProtocolResult(value=100.0 * float(hits.mean()), metric=Metric.RECALL_AT_1,
                              details={**scores, "database": self.params.database},
                              per_example=PerExample(test_correct=hits))
