"""Exact (and approximate) nearest-neighbour search by cosine similarity over features too large to hold
twice: FAISS on the CPU, torch matmuls on a GPU, the train side streamed in chunks whose top k are merged.
Shared by k-NN and class retrieval."""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from benchmark.devices import fits, to_numpy


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


CHUNK_BYTES = 1 << 28  # train rows normalised and searched at once: 256 MB (32,768 rows at 2048-d)


def chunk_rows(dim: int, k: int, chunk: int | None = None) -> int:
    """Train rows per chunk: `chunk`, else as many as CHUNK_BYTES of float32 hold; never fewer than k."""
    return max(k, chunk or max(1, CHUNK_BYTES // (4 * max(1, dim))))


def nearest_neighbours(train: np.ndarray, queries: np.ndarray, k: int, chunk: int | None = None, index: str = "flat",
                       nlist: int = 1024, nprobe: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, indices), each (queries, k), by cosine similarity, best first.

    "flat" (default) is FAISS's exact brute-force inner-product search. The train features are
    normalised and searched a chunk at a time (256 MB, or `chunk` rows), and each chunk's top k is merged
    into one running top k per query, so the memory on top of the inputs is one chunk plus the (queries, k)
    results, whatever the train set's size. "ivf" is FAISS's approximate inverted-list index."""
    import faiss

    queries = normalized(queries)
    if index == Index.IVF:
        return build_ivf_index(train, nlist, nprobe).search(queries, k)
    best, rows = faiss.ResultHeap(len(queries), k, keep_max=True), chunk_rows(train.shape[1], k, chunk)
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
