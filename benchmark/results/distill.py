"""`suite distill`: the few columns of a results table whose average rank orders the encoders as the
whole table's average rank does, so a lite suite can stand in for the full one (as MIEB's lite
benchmark and UniBench's subset do).

Agreement is Kendall's tau-b between the subset's average rank and the full average rank, over the
encoders. Columns are chosen greedily (the one that raises tau most, ties to the cheaper column), then
improved by single swaps until none helps. Because the same encoders choose and score the subset, tau is
optimistic; the held-out figure leaves each encoder out in turn, chooses the columns on the others,
and scores that choice on every encoder, so it says how well the subset ranks an encoder it never saw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from benchmark.errors import UserError

Column = tuple[str, str]  # (protocol label, dataset)


@dataclass(frozen=True)
class Distilled:
    columns: tuple[Column, ...]
    tau: float  # the chosen columns' tau on every encoder (chosen on them too)
    held_out_tau: float  # mean over encoders left out of the choice, each choice scored on every encoder
    held_out_min: float
    cost_fraction: float  # the chosen columns' estimated cost over the whole table's


def rank_table(wide: pd.DataFrame, lower_is_better: set[str] = frozenset()) -> pd.DataFrame:
    """Each column's ranks (1 = best, ties share the average), in the direction of its protocol."""
    return pd.DataFrame({c: wide[c].rank(ascending=c[0] in lower_is_better, method="average") for c in wide.columns},
                        index=wide.index)


Ranks = dict[Column, np.ndarray]  # each column's ranks over the encoders (plain arrays: the search indexes
# thousands of column subsets, and a DataFrame's MultiIndex lookup cost 30x the tau itself)


def column_ranks(ranks: pd.DataFrame) -> Ranks:
    return {column: ranks[column].to_numpy(float) for column in ranks.columns}


def agreement(ranks: Ranks, columns: list[Column], full: np.ndarray) -> float:
    """Kendall's tau-b between the average rank over `columns` and the full average rank."""
    tau = kendalltau(np.mean([ranks[c] for c in columns], axis=0), full).statistic
    return -1.0 if np.isnan(tau) else float(tau)


def choose(table: pd.DataFrame, n: int, cost: Callable[[list[Column]], float]) -> list[Column]:
    """Greedy forward selection of `n` columns by tau, then single swaps while one raises tau."""
    ranks, full, chosen = column_ranks(table), table.mean(axis=1).to_numpy(float), []
    candidates = list(ranks)
    for _ in range(n):
        best = max((c for c in candidates if c not in chosen),
                   key=lambda c: (agreement(ranks, [*chosen, c], full), -cost([*chosen, c])))
        chosen.append(best)
    return improve_by_swaps(ranks, chosen, full, cost)


def improve_by_swaps(ranks: Ranks, chosen: list[Column], full: np.ndarray,
                     cost: Callable[[list[Column]], float]) -> list[Column]:
    score = lambda columns: (agreement(ranks, columns, full), -cost(columns))  # noqa: E731
    current, improved = score(chosen), True
    while improved:
        improved = False
        for i in range(len(chosen)):
            for c in ranks:
                if c in chosen:
                    continue
                trial = [*chosen[:i], c, *chosen[i + 1:]]
                if score(trial) > current:
                    chosen, current, improved = trial, score(trial), True
    return chosen


def distill(wide: pd.DataFrame, n: int, cost: Callable[[list[Column]], float],
            lower_is_better: set[str] = frozenset()) -> Distilled:
    """The `n` columns of `wide` (encoders x (protocol, dataset)) that best keep its ranking."""
    if not 1 <= n < wide.shape[1]:
        raise UserError(f"--cells {n}: choose between 1 and {wide.shape[1] - 1} of the table's {wide.shape[1]} columns")
    if wide.shape[0] < 3:
        raise UserError(f"distilling needs at least 3 encoders to rank; the table has {wide.shape[0]}")
    table = rank_table(wide, lower_is_better)
    ranks, full = column_ranks(table), table.mean(axis=1).to_numpy(float)
    chosen = choose(table, n, cost)
    held_out = [agreement(ranks, choose(rank_table(wide.drop(index=e), lower_is_better), n, cost), full)
                for e in wide.index]
    return Distilled(tuple(chosen), agreement(ranks, chosen, full), float(np.mean(held_out)), float(np.min(held_out)),
                     cost(chosen) / cost(list(wide.columns)))
