"""Group means a published benchmark reports beside its cells (`benchmark.groups`): for VTAB-1k, each
encoder's mean over the natural, specialized and structured tasks, and VTAB's headline, the mean over all
19. A mean is printed only when the encoder has every task of it in that protocol column."""

from __future__ import annotations

import pandas as pd

from benchmark.groups import VTAB_GROUPS, vtab_dataset
from benchmark.results import latest_per_cell


def vtab_means(values: dict[str, float]) -> dict[str, float]:
    """{group: mean} for each complete group of one encoder's {dataset: value}, plus "all 19 tasks"."""
    means, every = {}, []
    for group, folders in VTAB_GROUPS.items():
        scores = [values.get(vtab_dataset(folder)) for folder in folders]
        every += scores
        if all(score is not None for score in scores):
            means[str(group)] = sum(scores) / len(scores)
    if all(score is not None for score in every):
        means["all 19 tasks"] = sum(every) / len(every)
    return means


def vtab_lines(rows: pd.DataFrame) -> list[str]:
    """"linear · Lite0: natural 71.2, specialized 80.1, structured 40.3, all 19 tasks 59.8" per encoder and
    column that has a complete group."""
    lines = []
    latest = latest_per_cell(rows)
    for (protocol, encoder), cells in latest.groupby(["protocol", "encoder"], sort=False):
        means = vtab_means(dict(zip(cells["dataset"], cells["value"].astype(float))))
        if means:
            lines.append(f"{protocol} · {encoder}: " + ", ".join(f"{name} {value:.1f}" for name, value in means.items()))
    return lines
