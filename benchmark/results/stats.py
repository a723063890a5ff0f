"""Statistics beyond a single number, from what rows store (`benchmark.outputs.PerExample`): 95%
confidence intervals of a cell, and paired tests between two encoders on the same test examples
(bootstrap) or the same episodes (t-test)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from benchmark.metrics import mean_ci95
from benchmark.outputs import PerExample
from benchmark.results import latest_per_cell
from benchmark.vocab import Metric


def bootstrap_distribution(statistic: Callable[[np.ndarray], np.ndarray], n: int, resamples: int, seed: int = 0,
                           chunk: int = 250) -> np.ndarray:
    """The statistic over `resamples` draws of n test-example indices with replacement. `statistic` maps
    a (draws, n) index matrix to one value per draw; draws come `chunk` at a time to bound memory."""
    rng = np.random.default_rng(seed)
    return np.concatenate([statistic(rng.integers(0, n, (min(chunk, resamples - start), n)))
                           for start in range(0, resamples, chunk)])


def bootstrap_ci95(statistic: Callable[[np.ndarray], np.ndarray], n: int, resamples: int = 1000, seed: int = 0
                   ) -> float:
    """Half the width of the 2.5-97.5 percentile interval of the bootstrap distribution."""
    low, high = np.percentile(bootstrap_distribution(statistic, n, resamples, seed), [2.5, 97.5])
    return float((high - low) / 2)


def resampled_ece(confidence: np.ndarray, correct: np.ndarray, bins: int) -> Callable[[np.ndarray], np.ndarray]:
    """`metrics.binned_ece` (in percent) of each draw of an index matrix, all draws in one bincount."""
    which = np.clip(np.searchsorted(np.linspace(0.0, 1.0, bins + 1), confidence, side="left") - 1, 0, bins - 1)
    gap = correct.astype(np.float64) - confidence

    def statistic(idx: np.ndarray) -> np.ndarray:
        slots = (which[idx] + bins * np.arange(len(idx))[:, None]).ravel()
        per_bin = np.bincount(slots, weights=gap[idx].ravel(), minlength=bins * len(idx)).reshape(len(idx), bins)
        return 100.0 * np.abs(per_bin).sum(1) / idx.shape[1]

    return statistic


def two_sided_p(differences: np.ndarray) -> float:
    """2 x the smaller tail of the resampled differences' sign, counted as (tail + 1) / (resamples + 1),
    so a finite number of resamples never gives p = 0 (the smallest is about 2 / resamples)."""
    tail = (min(np.sum(differences <= 0), np.sum(differences >= 0)) + 1) / (len(differences) + 1)
    return float(min(1.0, 2 * tail))


def paired_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, resamples: int = 10_000, seed: int = 0
                     ) -> tuple[float, float]:
    """(accuracy difference a - b in points, two-sided p-value): test examples resampled with
    replacement, the same draw for both encoders."""
    differences = np.asarray(correct_a, dtype=float) - np.asarray(correct_b, dtype=float)
    means = bootstrap_distribution(lambda idx: differences[idx].mean(1), len(differences), resamples, seed)
    return 100.0 * float(differences.mean()), two_sided_p(means)


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


def cell_statistic(row: pd.Series, outputs: PerExample | None = None
                   ) -> tuple[Callable[[np.ndarray], np.ndarray], int] | None:
    """The row's headline metric as a function of resampled test-example index matrices (one value per
    draw; see `bootstrap_distribution`), with the number of test examples, where the row stores what it
    takes (top-1: correctness; ECE: confidence and correctness); None otherwise. `outputs`: the row's
    decoded per-example data, when the caller has it already."""
    outputs, metric = outputs or per_example(row), Metric(row["metric"])
    if metric == Metric.ECE and outputs.test_confidence is not None and outputs.test_correct is not None:
        bins = int(row["details"].get("bins", 15))
        return resampled_ece(outputs.test_confidence, outputs.test_correct, bins), len(outputs.test_correct)
    if metric in (Metric.TOP1, Metric.RECALL_AT_1) and outputs.test_correct is not None:
        correct = outputs.test_correct.astype(np.float64)
        return (lambda idx: 100.0 * correct[idx].mean(1)), len(correct)
    return None


def cell_ci95(row: pd.Series) -> float | None:
    """A row's 95% confidence half-width: over few-shot episodes, 1.96 x std / sqrt(episodes) (Ericsson's
    tables); for top-1 and ECE, a bootstrap over test examples (`bootstrap_ci95`); None for other metrics."""
    outputs = per_example(row)
    if outputs.episode_accuracies is not None:
        return mean_ci95(np.asarray(outputs.episode_accuracies))[1]  # stored in percent
    found = cell_statistic(row, outputs)  # the row's per-example data, decoded once
    return bootstrap_ci95(*found) if found else None


def paired_evidence(a: pd.Series, b: pd.Series, resamples: int = 10_000) -> tuple[str, float]:
    """(which test, two-sided p-value) that two encoders' cells differ: a paired t-test over shared
    episodes, or a paired bootstrap of the metric over shared test examples (the same draws for both)."""
    ea, eb = per_example(a), per_example(b)
    if ea.episode_accuracies is not None and eb.episode_accuracies is not None and \
            ea.episodes_digest == eb.episodes_digest:
        return "paired t-test over episodes", episode_paired_test(ea.episode_accuracies, eb.episode_accuracies)[1]
    sa, sb = cell_statistic(a), cell_statistic(b)
    if sa is not None and sb is not None and sa[1] == sb[1] and a["split_sizes"] == b["split_sizes"]:
        differences = bootstrap_distribution(lambda idx: sa[0](idx) - sb[0](idx), sa[1], resamples)
        return "paired bootstrap over test examples", two_sided_p(differences)
    return "none (no per-example data; rerun with --recompute)", float("nan")
