"""DINO's weighted k-NN on L2-normalised features, with FAISS.

Each of the k nearest train(+val) points (cosine similarity) votes for its label with weight
exp(sim / T). One search at the largest k serves every k reported; k = 20 is the headline.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import numpy as np

from benchmark.devices import fits, to_numpy
from benchmark.metrics import correct_per_example, score
from benchmark.outputs import PerExample
from benchmark.params import CheckedParams, Constraints, Each, Interval, Options
from benchmark.protocols import PROTOCOLS
from benchmark.protocols.base import Features, FeatureTask, Protocol, ProtocolResult, Rows, check_finite, require_test_split
from benchmark.vocab import TaskType


class Index(StrEnum):
    FLAT = "flat"  # exact brute-force search
    IVF = "ivf"  # approximate inverted lists, for millions of train points


def normalized(x: np.ndarray) -> np.ndarray:
    """An L2-normalised float32 copy: one copy, normalised in place, norms by einsum (no squared temp)."""
    x = np.array(x, dtype=np.float32, order="C")
    x /= np.maximum(np.sqrt(np.einsum("ij,ij->i", x, x)), 1e-12)[:, None]
    return x


def build_ivf_index(train: np.ndarray, nlist: int = 1024, nprobe: int = 32, chunk: int = 65536):
    """An inverted-list inner-product FAISS index (approximate) for millions of train points. Train
    features are normalised and added in chunks, so no second full copy of them is made."""
    import faiss

    dim = train.shape[1]
    quantizer = faiss.IndexFlatIP(dim)
    built = faiss.IndexIVFFlat(quantizer, dim, min(nlist, len(train)), faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(0).choice(len(train), min(len(train), 64 * nlist), replace=False)
    built.train(normalized(train[np.sort(sample)]))
    built.nprobe = nprobe
    for start in range(0, len(train), chunk):
        built.add(normalized(train[start:start + chunk]))
    return built


def nearest_neighbours(train: np.ndarray, queries: np.ndarray, k: int, chunk: int = 131072, index: str = "flat",
                       nlist: int = 1024, nprobe: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, indices), each (queries, k), by cosine similarity, best first.

    "flat" (default) is FAISS's exact brute-force inner-product search. The train features are
    normalised and searched `chunk` rows at a time, and each chunk's top k is merged into one running
    top k per query, so the memory on top of the inputs is one chunk plus the (queries, k) results,
    whatever the train set's size. "ivf" is FAISS's approximate inverted-list index."""
    import faiss

    queries = normalized(queries)
    if index == Index.IVF:
        return build_ivf_index(train, nlist, nprobe).search(queries, k)
    best, rows = faiss.ResultHeap(len(queries), k, keep_max=True), max(chunk, k)
    for start in range(0, len(train), rows):
        similarities, indices = faiss.knn(queries, normalized(train[start:start + rows]), k,
                                          metric=faiss.METRIC_INNER_PRODUCT)
        best.add_result(similarities, np.where(indices >= 0, indices + start, -1))
    best.finalize()
    return best.D, best.I


def torch_nearest_neighbours(train: np.ndarray, queries: np.ndarray, k: int, device: str,
                             block_bytes: int = 1 << 29) -> tuple[np.ndarray, np.ndarray]:
    """The exact search of `nearest_neighbours` as torch matmuls on `device` (faiss-cpu has no GPU path):
    query blocks against train chunks sized so one similarity block stays under `block_bytes`, each
    chunk's top k merged into a running top k. Results come back as CPU arrays."""
    import torch

    queries_on = torch.as_tensor(normalized(queries), device=device)
    rows = max(k, block_bytes // (4 * max(1, min(len(queries), 4096))))
    resident = fits(4 * train.size, device)  # the whole train set uploaded (and normalised) once
    train_on = torch.as_tensor(normalized(train[:len(train)]), device=device) if resident else None
    best_s = queries_on.new_empty(len(queries_on), 0)
    best_i = torch.empty(len(queries_on), 0, dtype=torch.long, device=device)
    for start in range(0, len(train), rows):  # train chunks outside: each uploaded at most once
        chunk = (train_on[start:start + rows] if resident
                 else torch.as_tensor(normalized(train[start:start + rows]), device=device))
        merged = [merge_top_k(best_s[a:a + 4096], best_i[a:a + 4096], q @ chunk.T, start, k)
                  for a, q in zip(range(0, len(queries_on), 4096), queries_on.split(4096))]
        best_s, best_i = torch.cat([s for s, _ in merged]), torch.cat([i for _, i in merged])
    return to_numpy(best_s), to_numpy(best_i)


def merge_top_k(best_s, best_i, similarities, offset: int, k: int):
    """The running top k of a query block merged with one train chunk's similarities."""
    import torch

    s, i = similarities.topk(min(k, similarities.shape[1]), dim=1)
    merged_s, order = torch.cat([best_s, s], 1).topk(min(k, best_s.shape[1] + s.shape[1]), dim=1)
    return merged_s, torch.cat([best_i, i + offset], 1).gather(1, order)


def weighted_votes(similarities: np.ndarray, neighbour_labels: np.ndarray, k: int, temperature: float,
                   num_classes: int) -> np.ndarray:
    """Class scores (queries, classes): sum over the first k neighbours of exp(sim / T) times their
    label (one class index each, or a multi-hot row for multi-label data)."""
    import torch

    weights = np.exp(similarities[:, :k].astype(np.float64) / temperature)
    labels = neighbour_labels[:, :k]
    if labels.ndim == 3:
        return np.einsum("qk,qkc->qc", weights, labels.astype(np.float64))
    votes = torch.zeros(len(labels), num_classes, dtype=torch.float64)  # device: votes of CPU numpy arrays
    return votes.scatter_add_(1, torch.from_numpy(labels), torch.from_numpy(weights)).numpy()


def top_n_accuracy(votes: np.ndarray, labels: np.ndarray, n: int) -> float:
    """Percent of queries whose class is among the n highest-voted (n capped at the number of classes;
    ties broken by class index, as a stable sort of descending votes)."""
    best = np.argsort(-votes, axis=1, kind="stable")[:, :min(n, votes.shape[1])]
    return 100.0 * float((best == np.asarray(labels)[:, None]).any(1).mean())


@PROTOCOLS.register
class WeightedKNN(Protocol):
    name = "knn"
    version = "1.0"

    @dataclass(frozen=True)
    class Params(CheckedParams):
        k: tuple[int, ...] = (10, 20, 100, 200)
        headline_k: int = 20
        temperature: float = 0.07
        index: Index = Index.FLAT
        nlist: int = 1024  # ivf: inverted lists
        nprobe: int = 32  # ivf: lists searched per query
        constraints: ClassVar[Constraints] = {
            "k": Each(Interval(int, 1)), "headline_k": Interval(int, 1), "temperature": Interval(float, 0, open_low=True),
            "index": Options(*Index), "nlist": Interval(int, 1), "nprobe": Interval(int, 1)}

    def evaluate(self, data: FeatureTask) -> ProtocolResult:
        check_finite(data)
        require_test_split(data, self.name)
        reference = Features(Rows([data.train.x, data.val.x]), np.concatenate([data.train.y, data.val.y]))
        ks = sorted({min(k, len(reference)) for k in (*self.params.k, self.params.headline_k)})
        similarities, indices = self.search(reference.x, data.test.x, ks[-1], data.device)
        neighbour_labels = reference.y[indices]
        votes = {k: weighted_votes(similarities, neighbour_labels, k, self.params.temperature, data.num_classes)
                 for k in ks}
        scores = {k: score(data.metric, data.test.y, v) for k, v in votes.items()}
        headline = min(self.params.headline_k, len(reference))
        top = {}  # DINO's knn_classifier reports top-1 and top-5 at every k; kept beside the dataset's metric
        if data.task == TaskType.MULTICLASS:
            top = {f"top{n}_by_k": {str(k): top_n_accuracy(v, data.test.y, n) for k, v in votes.items()}
                   for n in (1, 5)}
        return ProtocolResult(value=scores[headline], metric=data.metric, chosen={"k": headline},
                              details={"by_k": {str(k): v for k, v in scores.items()}, **top,
                                       "temperature": self.params.temperature, "index": self.params.index},
                              per_example=PerExample(correct_per_example(data.metric, data.test.y, votes[headline])))

    def search(self, train: np.ndarray, queries: np.ndarray, k: int, device: str) -> tuple[np.ndarray, np.ndarray]:
        """FAISS on the CPU (exact flat, or IVF); on a GPU the exact search runs as torch matmuls there."""
        if device.startswith("cuda") and self.params.index == Index.FLAT:
            return torch_nearest_neighbours(train, queries, k, device)
        return nearest_neighbours(train, queries, k, index=self.params.index, nlist=self.params.nlist,
                                  nprobe=self.params.nprobe)
