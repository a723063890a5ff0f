"""How sure is a ranking? Bootstrap intervals for each encoder's average rank, and a pairwise matrix of
cells whose difference survives a Holm correction.

Two sources of uncertainty, kept apart:
- test examples: every scored cell is redrawn from what its row stores (test examples resampled with
  replacement, the same draws for every encoder of a cell; few-shot: episodes resampled), cells without
  per-example data (mIoU, mAP) keep their value; the ranks are recomputed on each redraw;
- datasets: the table's scored columns themselves resampled with replacement (how much the average
  rank depends on which tasks the suite happens to hold).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.results.stats import bootstrap_distribution, cell_statistic, paired_evidence, per_example
from benchmark.vocab import Direction, Metric, direction_of

RESAMPLES = 200
SIGNIFICANCE = 0.05


def scored(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows whose metric is a score (label-free diagnostics have no better direction)."""
    return rows[[direction_of([m]) is not Direction.NONE for m in rows["metric"]]]


def redraws(row: pd.Series, resamples: int, seed: int) -> np.ndarray:
    """`resamples` redraws of a row's value (constant when the row stores nothing to resample)."""
    episodes = per_example(row).episode_accuracies
    if episodes is not None:
        accuracies = np.asarray(episodes, dtype=float)
        return bootstrap_distribution(lambda idx: accuracies[idx].mean(1), len(accuracies), resamples, seed)
    found = cell_statistic(row)
    if found is not None:
        return bootstrap_distribution(found[0], found[1], resamples, seed)
    return np.full(resamples, float(row["value"]))


def rank_matrix(values: pd.DataFrame, lower: list[bool]) -> pd.DataFrame:
    """Per column, each encoder's rank (1 = best; ties share the average rank), direction-aware."""
    return pd.DataFrame({c: values[c].rank(ascending=low, method="average") for c, low in zip(values.columns, lower)})


def rank_intervals(rows: pd.DataFrame, resamples: int = RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Per encoder: average rank over the scored cells, and its 95% percentile intervals over redrawn
    test examples and over resampled datasets (columns)."""
    rows = scored(rows)
    groups = list(rows.groupby(["protocol", "dataset"], sort=False))
    encoders = list(dict.fromkeys(rows["encoder"]))
    lower = [direction_of(group["metric"]) is Direction.LOWER for _, group in groups]
    draws = np.full((resamples, len(encoders), len(groups)), np.nan)
    values = pd.DataFrame(np.nan, index=encoders, columns=range(len(groups)))
    for j, (_, group) in enumerate(groups):
        for _, row in group.iterrows():
            i = encoders.index(row["encoder"])
            values.iat[i, j] = row["value"]
            draws[:, i, j] = redraws(row, resamples, seed + j)  # one seed per cell: the same draws for all
    average = rank_matrix(values, lower).mean(axis=1)
    by_examples = np.array([rank_matrix(pd.DataFrame(d, index=encoders), lower).mean(axis=1) for d in draws])
    rng = np.random.default_rng(seed)
    by_datasets = []
    for _ in range(resamples):
        picked = rng.integers(0, len(groups), len(groups))
        by_datasets.append(rank_matrix(values.iloc[:, picked].set_axis(range(len(picked)), axis=1),
                                       [lower[k] for k in picked]).mean(axis=1))
    by_datasets = np.array(by_datasets)
    return pd.DataFrame({"average_rank": average,
                         "rank_ci_examples": [interval(by_examples[:, i]) for i in range(len(encoders))],
                         "rank_ci_datasets": [interval(by_datasets[:, i]) for i in range(len(encoders))]},
                        index=pd.Index(encoders, name="encoder"))


def interval(samples: np.ndarray) -> str:
    low, high = np.nanpercentile(samples, [2.5, 97.5])
    return f"{low:.2f}-{high:.2f}"


def holm(p_values: list[float], alpha: float = SIGNIFICANCE) -> list[bool]:
    """Holm's step-down: which hypotheses are rejected at family-wise error rate alpha."""
    order = np.argsort(p_values)
    rejected = [False] * len(p_values)
    for step, k in enumerate(order):
        if p_values[k] > alpha / (len(p_values) - step):
            break
        rejected[k] = True
    return rejected


def pairwise_significance(rows: pd.DataFrame, resamples: int = 2000) -> pd.DataFrame:
    """Cell (A, B): in how many of the cells both encoders have, A is significantly better than B after a
    Holm correction over those cells (paired tests, `stats.paired_evidence`), as 'wins/cells'."""
    rows = scored(rows)
    encoders = list(dict.fromkeys(rows["encoder"]))
    by_cell = rows.set_index(["encoder", "protocol", "dataset"])
    table = pd.DataFrame("", index=encoders, columns=encoders)
    for a in encoders:
        for b in encoders:
            if a == b:
                continue
            shared = [(p, d) for e, p, d in by_cell.index if e == a and (b, p, d) in by_cell.index]
            tests = [(by_cell.loc[(a, *c)], by_cell.loc[(b, *c)]) for c in shared]
            p_values = [paired_evidence(x, y, resamples)[1] for x, y in tests]
            testable = [k for k, p in enumerate(p_values) if not np.isnan(p)]
            rejected = holm([p_values[k] for k in testable])
            wins = sum(1 for k, r in zip(testable, rejected) if r and better(*tests[k]))
            table.at[a, b] = f"{wins}/{len(testable)}"
    return table


def better(a: pd.Series, b: pd.Series) -> bool:
    return Metric(a["metric"]).spec.better(a["value"], b["value"])
