"""Few-shot: all 600 episodes scored in one batched computation vs a per-episode loop (the
reference's structure: per episode, prototypes, distances, arg-min), on the same features and episodes.

    python perf/fewshot.py [--pool 20000] [--dim 1280]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.protocols.fewshot import prototype_accuracies, sample_episodes  # noqa: E402
from perf._features import synthetic_features  # noqa: E402


def per_episode_loop(features: np.ndarray, episodes) -> np.ndarray:
    x = torch.as_tensor(features)
    accuracies = []
    for support, query in zip(episodes.support, episodes.query):
        prototypes = torch.stack([x[torch.as_tensor(rows)].mean(0) for rows in support])
        queries = x[torch.as_tensor(query.reshape(-1))]
        predicted = torch.cdist(queries, prototypes).argmin(1)
        truth = torch.arange(len(support)).repeat_interleave(query.shape[1])
        accuracies.append(float((predicted == truth).double().mean()))
    return np.asarray(accuracies)


def compare(pool: int, dim: int, episodes: int = 600) -> dict:
    x, y = synthetic_features(pool, dim, separation=0.1)
    chosen = sample_episodes(y, 5, 20, 15, episodes, seed=0)
    prototype_accuracies(x[:2000], sample_episodes(y[:2000], 5, 20, 15, 2, seed=1))  # warm up torch
    start = time.perf_counter()
    fast = prototype_accuracies(x, chosen)
    fast_s = time.perf_counter() - start
    start = time.perf_counter()
    slow = per_episode_loop(x, chosen)
    slow_s = time.perf_counter() - start
    return {"size": f"{episodes} episodes 5-way 20-shot, pool {pool}x{dim}", "vectorised_s": fast_s,
            "loop_s": slow_s, "ratio": slow_s / fast_s, "max_difference": float(np.abs(fast - slow).max()),
            "accuracy": 100 * float(fast.mean())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pool", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=1280)
    args = parser.parse_args()
    row = compare(args.pool, args.dim)
    print(f"fewshot {row['size']}: vectorised {row['vectorised_s']:.2f}s, loop {row['loop_s']:.2f}s, "
          f"{row['ratio']:.1f}x; largest per-episode difference {row['max_difference']:.2g}")


if __name__ == "__main__":
    main()
