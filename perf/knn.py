"""k-NN: one FAISS search (exact inner product) vs sklearn KNeighborsClassifier (brute force, cosine,
the same exp(sim / T) weights), side by side on the same features; plus a 1M x 768 train set searched
in chunks with the resident memory measured.

    python perf/knn.py [--train 50000] [--test 10000] [--dim 512] [--big 1000000]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf._machine import describe  # noqa: E402
from benchmark.protocols import Features, FeatureTask, make_protocol  # noqa: E402
from benchmark.protocols.knn import nearest_neighbours  # noqa: E402
from perf._features import synthetic_features  # noqa: E402
from perf._timing import best_of  # noqa: E402

TEMPERATURE = 0.07


def sklearn_predictions(train_x, train_y, test_x, k: int) -> np.ndarray:
    from sklearn.neighbors import KNeighborsClassifier

    weights = lambda distances: np.exp((1.0 - distances) / TEMPERATURE)  # cosine distance = 1 - similarity
    clf = KNeighborsClassifier(n_neighbors=k, algorithm="brute", metric="cosine", weights=weights)
    return clf.fit(train_x, train_y).predict(test_x)


def warm_up(k: int) -> None:
    """Import and initialise both libraries (faiss, sklearn, their thread pools) outside the timing."""
    x, y = synthetic_features(400, 16, seed=1)
    data = FeatureTask(Features(x[:300], y[:300]), Features(x[:0], y[:0]), Features(x[300:], y[300:]), 10, "top1")
    make_protocol("knn", {"k": [k], "headline_k": k}).evaluate(data)
    sklearn_predictions(x[:300], y[:300], x[300:], k)


def compare(n_train: int, n_test: int, dim: int, k: int = 20) -> dict:
    warm_up(k)
    x, y = synthetic_features(n_train + n_test, dim, separation=0.1)
    train, test = Features(x[:n_train], y[:n_train]), Features(x[n_train:], y[n_train:])
    data = FeatureTask(train, Features(x[:0], y[:0]), test, 10, "top1")
    protocol = make_protocol("knn", {"k": [k], "headline_k": k})
    fast_s, ours = best_of(3, lambda: protocol.evaluate(data))
    slow_s, theirs = best_of(3, lambda: sklearn_predictions(train.x, train.y, test.x, k))
    gemm_s, _ = best_of(3, lambda: similarity_gemm(train.x, test.x))
    ours_predictions = knn_predictions(train, test, k)
    return {"size": f"{n_train}x{dim} / {n_test} queries", "faiss_s": fast_s, "sklearn_s": slow_s,
            "ratio": slow_s / fast_s, "identical": float(np.mean(ours_predictions == theirs)),
            "accuracy": ours.value, "gemm_s": gemm_s, "ceiling": slow_s / gemm_s}


def similarity_gemm(train: np.ndarray, queries: np.ndarray, chunk: int = 1024) -> None:
    """Only the float32 products queries x train^T that any exact search must compute (into one reused
    buffer, no selection): the floor under an exact k-NN's time on this machine."""
    import torch

    database, q = torch.from_numpy(train), torch.from_numpy(queries)
    out = torch.empty(chunk, len(train))
    for start in range(0, len(q), chunk):
        block = q[start:start + chunk]
        torch.matmul(block, database.T, out=out[:len(block)])


def knn_predictions(train: Features, test: Features, k: int) -> np.ndarray:
    from benchmark.protocols.knn import weighted_votes

    sims, idx = nearest_neighbours(train.x, test.x, k)
    return weighted_votes(sims, train.y[idx], k, TEMPERATURE, 10).argmax(1)


def big_search(n_train: int, dim: int, n_test: int = 2000) -> dict:
    rss_gb = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # noqa: E731  (KiB on Linux)
    rng = np.random.default_rng(0)
    train = np.empty((n_train, dim), np.float32)
    for start in range(0, n_train, 100_000):
        train[start:start + 100_000] = rng.standard_normal((min(100_000, n_train - start), dim), dtype=np.float32)
    queries = rng.standard_normal((n_test, dim), dtype=np.float32)
    before = rss_gb()
    start = time.perf_counter()
    sims, _ = nearest_neighbours(train, queries, 200)
    seconds = time.perf_counter() - start
    return {"size": f"{n_train}x{dim} / {n_test} queries, k=200", "seconds": seconds,
            "data_gb": train.nbytes / 2**30, "peak_rss_gb": rss_gb(), "rss_before_gb": before,
            "finite": bool(np.isfinite(sims).all())}


def main() -> None:
    print(describe())
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=50000)
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2000 x 500 x 64, big 20000")
    args = parser.parse_args()
    if args.quick:
        args.train, args.test, args.dim, args.big = 2000, 500, 64, 20000
    row = compare(args.train, args.test, args.dim)
    print(f"knn {row['size']}: sklearn {row['sklearn_s']:.1f}s, faiss {row['faiss_s']:.1f}s, {row['ratio']:.1f}x; "
          f"identical predictions {100 * row['identical']:.2f}%; the similarity GEMM alone {row['gemm_s']:.2f}s "
          f"(no exact float32 search can beat sklearn by more than {row['ceiling']:.1f}x here)")
    big = big_search(args.big, 768)
    print(f"knn {big['size']}: {big['seconds']:.1f}s; train data {big['data_gb']:.2f} GB, peak RSS "
          f"{big['peak_rss_gb']:.2f} GB (before the search {big['rss_before_gb']:.2f} GB)")


if __name__ == "__main__":
    main()
