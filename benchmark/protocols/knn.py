"""DINO's weighted k-NN on L2-normalised features, with FAISS.

Each of the k nearest train(+val) points (cosine similarity) votes for its label with weight
exp(sim / T). One search at the largest k serves every k reported; k = 20 is the headline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from benchmark.metrics import correct_per_example, score
from benchmark.outputs import PerExample
from benchmark.params import CheckedParams, Constraints, Each, Interval, Options
from benchmark.protocols import PROTOCOLS
from benchmark.protocols._neighbours import Index, nearest_neighbours, torch_nearest_neighbours
from benchmark.protocols.base import Features, FeatureTask, Protocol, ProtocolResult, Rows, check_finite, require_test_split, restricted
from benchmark.vocab import TaskType


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


QUERY_BLOCK = 8192  # queries ranked at once by top_n_accuracy: its sort's temporaries stay ~130 MB at 1,000 classes


def top_n_accuracy(votes: np.ndarray, labels: np.ndarray, n: int) -> float:
    """Percent of queries whose class is among the n highest-voted (n capped at the number of classes;
    ties broken by class index, as a stable sort of descending votes), a block of queries at a time."""
    labels, hits = np.asarray(labels), 0
    for start in range(0, len(votes), QUERY_BLOCK):
        block = votes[start:start + QUERY_BLOCK]
        best = np.argsort(-block, axis=1, kind="stable")[:, :min(n, votes.shape[1])]
        hits += int((best == labels[start:start + QUERY_BLOCK, None]).any(1).sum())
    return 100.0 * (hits / max(1, len(votes)))  # as 100 * mean: the same bits as one block


@PROTOCOLS.register
class WeightedKNN(Protocol):
    name = "knn"
    version = "1.0"
    restricts_classes = True

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
        headline = min(self.params.headline_k, len(reference))
        scores, top, correct = {}, {"top1_by_k": {}, "top5_by_k": {}}, None
        for k in ks:  # one (queries, classes) votes array at a time: ImageNet's are 400 MB each
            votes = restricted(weighted_votes(similarities, neighbour_labels, k, self.params.temperature,
                                              data.num_classes), data.test_classes)
            scores[k] = score(data.metric, data.test.y, votes)
            if data.task == TaskType.MULTICLASS:  # DINO's knn_classifier reports top-1 and top-5 at every k
                for n in (1, 5):
                    top[f"top{n}_by_k"][str(k)] = top_n_accuracy(votes, data.test.y, n)
            if k == headline:
                correct = correct_per_example(data.metric, data.test.y, votes)
        top = top if data.task == TaskType.MULTICLASS else {}
        return ProtocolResult(value=scores[headline], metric=data.metric, chosen={"k": headline},
                              details={"by_k": {str(k): v for k, v in scores.items()}, **top,
                                       "temperature": self.params.temperature, "index": self.params.index},
                              per_example=PerExample(correct))

    def search(self, train: np.ndarray, queries: np.ndarray, k: int, device: str) -> tuple[np.ndarray, np.ndarray]:
        """FAISS on the CPU (exact flat, or IVF); on a GPU the exact search runs as torch matmuls there."""
        if device.startswith("cuda") and self.params.index == Index.FLAT:
            return torch_nearest_neighbours(train, queries, k, device)
        return nearest_neighbours(train, queries, k, index=self.params.index, nlist=self.params.nlist,
                                  nprobe=self.params.nprobe)
