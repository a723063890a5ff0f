"""Few-shot: all 600 episodes scored in batched blocks vs the reference's per-episode loop (its
ProtoNet arithmetic on cached features), on the same features and episodes.

    python perf/fewshot.py [--pool 20000] [--dim 1280]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf._machine import describe  # noqa: E402
from benchmark.protocols.fewshot import prototype_accuracies, sample_episodes  # noqa: E402
from perf._features import synthetic_features  # noqa: E402
from perf._timing import best_of  # noqa: E402


def per_episode_loop(features: np.ndarray, episodes) -> np.ndarray:
    """The reference's per-episode arithmetic (ssl-transfer's ProtoNet) on cached features: gather the
    episode's rows, prototypes as support means, squared distances by broadcasting, log-softmax of
    their negatives, arg-max."""
    x = torch.as_tensor(features)
    ways, shots = episodes.support.shape[1:]
    per_class = episodes.query.shape[2]
    truth = torch.arange(ways).view(ways, 1)
    accuracies = []
    for support, query in zip(episodes.support, episodes.query):
        prototypes = x[torch.as_tensor(support.reshape(-1))].view(ways, shots, -1).mean(1)
        queries = x[torch.as_tensor(query.reshape(-1))]
        n, d = len(queries), x.shape[1]
        distances = (queries.unsqueeze(1).expand(n, ways, d) - prototypes.unsqueeze(0).expand(n, ways, d)).pow(2).sum(2)
        predicted = torch.log_softmax(-distances, dim=1).view(ways, per_class, ways).argmax(2)
        accuracies.append(float((predicted == truth).float().mean()))
    return np.asarray(accuracies)


def read_episode_rows(features: np.ndarray, episodes, block: int = 8) -> None:
    """Only gathering every episode's support and query rows (no arithmetic): what any scoring that
    gathers each episode's rows must spend on this machine."""
    x = torch.as_tensor(features)
    rows = torch.from_numpy(np.concatenate([episodes.support.reshape(len(episodes.support), -1),
                                            episodes.query.reshape(len(episodes.query), -1)], axis=1))
    for start in range(0, len(rows), block):
        x.index_select(0, rows[start:start + block].reshape(-1))


def compare(pool: int, dim: int, episodes: int = 600) -> dict:
    x, y = synthetic_features(pool, dim, separation=0.1)
    chosen = sample_episodes(y, 5, 20, 15, episodes, seed=0)
    prototype_accuracies(x[:2000], sample_episodes(y[:2000], 5, 20, 15, 2, seed=1))  # warm up torch
    fast_s, fast = best_of(3, lambda: prototype_accuracies(x, chosen))
    slow_s, slow = best_of(3, lambda: per_episode_loop(x, chosen))
    read_s, _ = best_of(3, lambda: read_episode_rows(x, chosen))
    return {"size": f"{episodes} episodes 5-way 20-shot, pool {pool}x{dim}", "vectorised_s": fast_s,
            "loop_s": slow_s, "ratio": slow_s / fast_s, "read_s": read_s, "ceiling": slow_s / read_s, "max_difference": float(np.abs(fast - slow).max()),
            "accuracy": 100 * float(fast.mean())}


def main() -> None:
    print(describe())
    parser = argparse.ArgumentParser()
    parser.add_argument("--pool", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--quick", action="store_true", help="a smoke run: pool 2000 x 64")
    args = parser.parse_args()
    if args.quick:
        args.pool, args.dim = 2000, 64
    row = compare(args.pool, args.dim)
    print(f"fewshot {row['size']}: vectorised {row['vectorised_s']:.2f}s, loop {row['loop_s']:.2f}s, "
          f"{row['ratio']:.1f}x; largest per-episode difference {row['max_difference']:.2g}; reading the episodes' "
          f"rows alone {row['read_s']:.3f}s (a gathering method cannot beat the loop by more than {row['ceiling']:.1f}x here)")


if __name__ == "__main__":
    main()
