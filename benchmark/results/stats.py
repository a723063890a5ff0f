"""Statistics beyond a single number: 95% confidence intervals for cells with repetitions, and paired
tests between two encoders on the same test examples (bootstrap) or the same episodes (t-test)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from benchmark.metrics import mean_ci95  # noqa: F401 (re-exported)
from benchmark.outputs import PerExample
from benchmark.results import latest_per_cell


def paired_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, resamples: int = 10_000, seed: int = 0
                     ) -> tuple[float, float]:
    """(accuracy difference a - b in points, two-sided p-value): test examples resampled with
    replacement, the same draw for both encoders; p = 2 x the smaller tail of the difference's sign,
    counted as (tail + 1) / (resamples + 1), so the smallest p reported is about 2 / resamples."""
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    differences = a - b
    rng = np.random.default_rng(seed)
    means = np.array([differences[rng.integers(0, len(differences), len(differences))].mean()
                      for _ in range(resamples)])
    tail = (min(np.sum(means <= 0), np.sum(means >= 0)) + 1) / (resamples + 1)  # never 0 from finite resamples
    return 100.0 * float(differences.mean()), float(min(1.0, 2 * tail))


def episode_paired_test(accuracies_a: np.ndarray, accuracies_b: np.ndarray) -> tuple[float, float]:
    """(mean difference in points, p-value) of a paired t-test over shared episodes."""
    a, b = np.asarray(accuracies_a, dtype=float), np.asarray(accuracies_b, dtype=float)
    if np.allclose(a, b):
        return 0.0, 1.0
    return float((a - b).mean()), float(stats.ttest_rel(a, b).pvalue)


def compare_encoders(rows: pd.DataFrame, encoder_a: str, encoder_b: str) -> pd.DataFrame:
    """Every (protocol, dataset) both encoders have: values, difference and a paired p-value where
    the rows carry per-example correctness or per-episode accuracies."""
    latest = latest_per_cell(rows).set_index(["protocol", "dataset", "encoder"])
    records = []
    for protocol, dataset in latest.index.droplevel(2).unique():
        try:
            a, b = latest.loc[(protocol, dataset, encoder_a)], latest.loc[(protocol, dataset, encoder_b)]
        except KeyError:
            continue
        test, p_value = paired_evidence(a, b)
        records.append({"protocol": protocol, "dataset": dataset, encoder_a: a["value"], encoder_b: b["value"],
                        "difference": a["value"] - b["value"], "p_value": p_value, "test": test})
    return pd.DataFrame(records)


def per_example(row: pd.Series) -> PerExample:
    """A row's per-example outputs; rows stored before they had their own column kept them in details."""
    record = row.get("per_example") or row["details"]
    return PerExample.from_json(record, test_count=int(row["split_sizes"].get("test", 0)))


def paired_evidence(a: pd.Series, b: pd.Series) -> tuple[str, float]:
    ea, eb = per_example(a), per_example(b)
    if ea.episode_accuracies is not None and eb.episode_accuracies is not None and \
            ea.episodes_digest == eb.episodes_digest:
        return "paired t-test over episodes", episode_paired_test(ea.episode_accuracies, eb.episode_accuracies)[1]
    if ea.test_correct is not None and eb.test_correct is not None and a["split_sizes"] == b["split_sizes"]:
        return "paired bootstrap over test examples", paired_bootstrap(ea.test_correct, eb.test_correct)[1]
    return "none (no per-example data; rerun with --recompute)", float("nan")
