"""Feature sets for the perf scripts: seeded, class-structured, non-negative (like ReLU features),
hard enough that the C sweep matters (validation accuracy well below 100%)."""

from __future__ import annotations

import numpy as np

from benchmark.data.splits import holdout_split
from benchmark.protocols import Features, FeatureTask


def synthetic_features(n: int, d: int, classes: int = 10, separation: float = 0.06, seed: int = 0
                       ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(classes, d)) * separation
    labels = rng.integers(0, classes, n)
    basis = rng.normal(size=(64, d)).astype(np.float32) / 8
    x = means[labels].astype(np.float32) + rng.standard_normal((n, 64), dtype=np.float32) @ basis
    x += rng.standard_normal((n, d), dtype=np.float32) * 0.5
    return np.maximum(x, 0, out=x), labels


def synthetic_task(n_train: int, n_test: int, d: int, **kwargs) -> FeatureTask:
    x, y = synthetic_features(n_train + n_test, d, **kwargs)
    train_idx, val_idx = holdout_split(n_train)
    return FeatureTask(Features(x[train_idx], y[train_idx]), Features(x[val_idx], y[val_idx]),
                    Features(x[n_train:], y[n_train:]), int(y.max()) + 1, "top1")
