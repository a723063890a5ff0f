"""A lite suite from a full one: the full suite's cells that a results table says rank encoders as the
whole table does (`benchmark.results.distill`), written as a suite YAML that runs on its own.

The table is a published one (`--reference ericsson2021`, whose columns are mapped onto the suite's by
protocol and few-shot setting) or our results store's rows of the suite.
"""

from __future__ import annotations

import datetime
import functools
from pathlib import Path

import pandas as pd
import yaml

from benchmark.config import Suite, read_yaml
from benchmark.cost import cells_cost, task_of
from benchmark.errors import UserError
from benchmark.protocols import PROTOCOLS
from benchmark.results.distill import Distilled, distill
from benchmark.results.leaderboard import diagnostic_protocols, lower_is_better_protocols
from benchmark.results.reference import AVERAGES, labelled, load_reference
from benchmark.results.table import results_table


def task_setting(suite: Suite, column: str, dataset: str) -> str:
    """How a published table labels the cell: a few-shot column's "fewshot 5-way 20-shot"; else the
    registered protocol, or the column's own name where that names one (the Ericsson suite's `linear`
    column keeps its name on ImageNet, where linear_sgd fills it)."""
    task = task_of(suite, column, dataset)
    params = PROTOCOLS.get(task.kind).Params(**task.params)
    ways, shots = getattr(params, "ways", None), getattr(params, "shots", None)
    if ways and shots:
        return f"{task.kind} {ways}-way {shots}-shot"
    return column if column in PROTOCOLS else task.kind


def published_wide(suite: Suite, name: str) -> pd.DataFrame:
    """A published table as encoders x (suite column, dataset), its labels matched to the suite's columns."""
    rows = labelled(load_reference(name))
    rows = rows[~rows["dataset"].isin(AVERAGES)]
    columns = {(task_setting(suite, t.protocol, d), d): t.protocol for d in suite.datasets for t in suite.tasks(d)}
    unmatched = sorted({f"{p}·{d}" for p, d in zip(rows["protocol"], rows["dataset"])} -
                       {f"{p}·{d}" for p, d in columns})
    if unmatched:
        raise UserError(f"reference {name}'s columns {', '.join(unmatched[:5])} are not cells of suite {suite.name}; "
                        f"pass the suite it was published for (--suite)")
    return results_table(rows.assign(protocol=[columns[(p, d)] for p, d in zip(rows["protocol"], rows["dataset"])]))


def stored_wide(suite: Suite, rows: pd.DataFrame) -> tuple[pd.DataFrame, set[str]]:
    """Our rows of the suite as encoders x (column, dataset), without label-free diagnostics."""
    if rows.empty:
        raise UserError(f"the results store has no rows of suite {suite.name}; run `evaluate --suite {suite.name}`")
    wide = results_table(rows)
    diagnostics = diagnostic_protocols(rows)
    return wide.drop(columns=[c for c in wide.columns if c[0] in diagnostics]), lower_is_better_protocols(rows)


def distill_suite(suite: Suite, wide: pd.DataFrame, cells: int, lower: set[str] = frozenset()
                  ) -> tuple[Distilled, list[str]]:
    """The distilled cells, and the columns left out because some encoder has no value there (a column
    with a gap cannot be ranked on)."""
    complete = wide.dropna(axis=1)
    dropped = [f"{p}·{d}" for p, d in wide.columns if (p, d) not in complete.columns]

    @functools.cache
    def cost_of(cells: frozenset) -> float:  # the search prices the same column sets thousands of times
        return cells_cost(suite, cells)

    return distill(complete, cells, lambda chosen: cost_of(frozenset(chosen)), lower), dropped


def lite_yaml(suite: Suite, result: Distilled, source: str, encoders: int) -> str:
    """The lite suite: the parent's preprocessing, seeds and used protocol entries, its chosen cells."""
    parent = read_yaml(Path(suite.source))
    used = {column for column, _ in result.columns}
    datasets: dict[str, dict] = {}
    for column, dataset in result.columns:
        entry = datasets.setdefault(dataset, {k: v for k, v in parent["datasets"][dataset].items() if k != "protocols"})
        entry.setdefault("protocols", []).append(column)
    body = {"name": f"{suite.name}-lite", "version": 1,
            "description": f"{len(result.columns)} cells of {suite.name} chosen to rank encoders as the whole "
                           f"table does (suite distill)",
            **{k: parent[k] for k in ("seeds", "preprocessing") if k in parent},
            "protocols": {k: v for k, v in parent["protocols"].items() if k in used}, "datasets": datasets}
    overrides = [o for o in parent.get("overrides") or [] if (o["protocol"], o["dataset"]) in set(result.columns)]
    if overrides:
        body["overrides"] = overrides
    return header(suite, result, source, encoders) + yaml.safe_dump(body, sort_keys=False, width=110)


def header(suite: Suite, result: Distilled, source: str, encoders: int) -> str:
    return (f"# Written by `transferbench suite distill` from {source} ({encoders} encoders) on "
            f"{datetime.date.today().isoformat()}.\n"
            f"# Kendall tau of this suite's average rank with the whole table's: {result.tau:.3f} on the encoders "
            f"that chose it;\n# {result.held_out_tau:.3f} on average (lowest {result.held_out_min:.3f}) when each "
            f"encoder in turn is left out of the choice.\n"
            f"# Estimated cost: {result.cost_fraction:.2%} of the table's cells in images through the encoder "
            f"(benchmark/cost.py).\n")
