"""What a run says, readable in a terminal: one compact table per protocol (encoders x datasets, each
cell `value ± CI95`, the best of each column marked in the metric's direction), the skipped cells in
one line, and a closing summary in plain words (who beats the baselines, how often significantly, and
how ImageNet accuracy relates to each protocol's mean).

Confidence intervals come from what the rows already store (`benchmark.outputs.PerExample`):
- few-shot: 1.96 x std / sqrt(episodes) over the episode accuracies (Ericsson's tables);
- top-1 (linear, k-NN, fine-tune) and ECE (calibration): half the width of the 95% percentile interval
  of a bootstrap over test examples (1,000 resamples, seed 0);
- other metrics (mean per class, VOC mAP, mIoU): none, shown without ±.
A cell run at several seeds shows their mean and `σ` their standard deviation (`results.over_seeds`).
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np
import pandas as pd
from scipy import stats

from benchmark.results import with_rerun_means
from benchmark.results.groups import vtab_lines
from benchmark.results.lowshot import lowshot_lines
from benchmark.results.shift import robustness_lines
from benchmark.results.stats import cell_ci95, paired_evidence
from benchmark.vocab import Direction, Metric, direction_of

PAIRED_RESAMPLES = 2000
SIGNIFICANCE = 0.05
BASELINE_SOURCES = ("pixels",)  # encoders that are baselines by construction, besides random-init ones


def paired_p_value(a: pd.Series, b: pd.Series) -> float | None:
    """The paired test's p-value (`stats.paired_evidence`), or None when the two cells cannot be paired."""
    p_value = paired_evidence(a, b, PAIRED_RESAMPLES)[1]
    return None if np.isnan(p_value) else p_value


def lower_is_better(rows: pd.DataFrame) -> bool:
    return direction_of(rows["metric"]) is Direction.LOWER


def printed_digits(score: bool) -> int:
    """Decimals a table prints: scores (points) to 1, label-free measures to 2."""
    return 1 if score else 2


def is_score(rows: pd.DataFrame) -> bool:
    return direction_of(rows["metric"]) is not Direction.NONE


@dataclass(frozen=True)
class ProtocolTable:
    """One protocol's cells: values and CI half-widths (NaN where none), encoders x datasets."""

    protocol: str
    metric: str
    values: pd.DataFrame
    ci95: pd.DataFrame
    lower_is_better: bool
    is_score: bool = True  # False for label-free diagnostics: nothing is "best"
    spread: pd.DataFrame | None = None  # the linear probe's range over row orders (NaN where not measured)
    seed_std: pd.DataFrame | None = None  # standard deviation over the run's seeds (NaN with one seed)
    rerun_marks: pd.DataFrame | None = None  # the stability runs' `rerun_mark` where they print differently, else NaN

    def best(self) -> pd.DataFrame:
        """True where a cell is level with its column's best value: it prints the same, or it lies within
        the ≈ mark of a cell that does (`level_within_marks`). None for diagnostics."""
        if not self.is_score:
            return self.values.notna() & False
        printed, marks = self.values.map(self.printed), self.marks()
        level = pd.DataFrame({c: level_within_marks(printed[c], marks[c]) for c in printed.columns},
                             index=printed.index)
        target = level.min() if self.lower_is_better else level.max()
        return level.eq(target, axis=1) & self.values.notna()

    def marks(self) -> pd.DataFrame:
        """Each cell's ≈ mark as printed; 0 where its runs printed the same or it has no reruns."""
        marks = self.rerun_marks if self.rerun_marks is not None else self.values * np.nan
        return marks.fillna(0.0).map(self.printed)

    def printed(self, number: float) -> float:
        return float(f"{number:.{self.digits}f}") if pd.notna(number) else number

    def means(self) -> pd.Series:
        """Each encoder's mean over the datasets, for encoders that have every one of them."""
        return self.values.mean(axis=1).where(self.values.notna().all(axis=1))

    @property
    def digits(self) -> int:
        """Decimals the table prints: scores in points to 1, label-free measures to 2."""
        return printed_digits(self.is_score)

    def printed_means(self) -> pd.Series:
        return self.means().map(self.printed)

    def ranked_means(self) -> pd.Series:
        """The means as the summary ranks them and the mean column bolds them: as printed, and level where
        they lie within their ≈ marks (a mean's mark: its cells' marks averaged). So two encoders the
        table shows level are tied, and an order that another CPU's rounding may flip (finer than the
        print, or inside a marked cell's mark) never reaches a summary line."""
        return level_within_marks(self.printed_means(), self.marks().mean(axis=1).map(self.printed))


def level_within_marks(values: pd.Series, marks: pd.Series) -> pd.Series:
    """Each value replaced by the mean of its level group, so that rank statistics tie the group. Sorted,
    each value joins the previous one's group when the gap between them is at most the larger of their
    marks (0 for an unmarked value: only equal values join). NaN stays NaN."""
    present, level = values.dropna().sort_values(kind="stable"), values.copy()
    groups: list[list] = []
    for name in present.index:
        joins = groups and present[name] - present[groups[-1][-1]] <= max(marks[name], marks[groups[-1][-1]]) + 1e-9
        groups[-1].append(name) if joins else groups.append([name])
    for group in groups:
        level[group] = present[group].mean()
    return level


def protocol_tables(rows: pd.DataFrame, with_ci: bool = True) -> list[ProtocolTable]:
    """One table per protocol column of the suite, in first-seen order; encoders in first-seen order.
    `with_ci=False` skips the bootstraps (all NaN) where only values and means are read."""
    encoders = list(dict.fromkeys(rows["encoder"]))
    rows = rows if "stability_runs" in rows else with_rerun_means(rows)
    tables = []
    for protocol, group in rows.groupby("protocol", sort=False):
        datasets = list(dict.fromkeys(group["dataset"]))
        index = pd.MultiIndex.from_frame(group[["encoder", "dataset"]])

        def grid(numbers: list[float]) -> pd.DataFrame:
            cells = pd.Series(numbers, index=index, dtype=float)
            return cells.unstack("dataset").reindex(index=encoders, columns=datasets)

        values = grid(list(group["value"])).dropna(how="all")
        ci95 = grid([cell_ci95(row) if with_ci else None for _, row in group.iterrows()])
        spread = grid([order_spread(row) for _, row in group.iterrows()])
        seed_std = grid(list(group["seed_std"]) if "seed_std" in group else [np.nan] * len(group))
        digits = printed_digits(is_score(group))
        unstable = grid([rerun_mark(row["stability_runs"], digits) for _, row in group.iterrows()])
        tables.append(ProtocolTable(str(protocol), "/".join(dict.fromkeys(group["metric"])), values,
                                    ci95.loc[values.index], lower_is_better(group), is_score(group),
                                    spread.loc[values.index], seed_std.loc[values.index], unstable.loc[values.index]))
    return tables


def order_spread(row: pd.Series) -> float:
    """The range of the reference solver's score over shuffled row orders (linear `permutations`)."""
    details = row.get("details")
    return float(details.get("permutation_spread", np.nan)) if isinstance(details, dict) else np.nan


def rerun_mark(runs: list[float] | None, digits: int) -> float:
    """How far another machine's mean of as many runs may lie from this one: the 95% prediction half-width
    for the mean of n fresh runs, t(0.975, n - 1) x sd x sqrt(2 / n), sd being the runs' sample standard
    deviation (a run and its `stability: N` reruns, `results.with_rerun_means`). NaN where the runs print
    the same at `digits` decimals, or there are none. The runs' range is not enough: on Lite2's fine-tune
    cell three runs spread over 1.47 points under each of four kernel paths, and the means moved by 1.96."""
    if not isinstance(runs, list) or len({f"{v:.{digits}f}" for v in runs}) < 2:
        return np.nan
    n = len(runs)
    return float(stats.t.ppf(0.975, n - 1) * np.std(runs, ddof=1) * np.sqrt(2 / n))


def format_cell(value: float, ci95: float, best: bool, digits: int = 1, spread: float = np.nan,
                seed_std: float = np.nan, mark: float = np.nan) -> str:
    if np.isnan(value):
        return "--"
    shown = f"{value:.{digits}f}"
    text = shown if np.isnan(ci95) else f"{shown} ± {ci95:.{digits}f}"
    text = text if np.isnan(spread) else f"{text} ↔{spread:.{digits}f}"
    text = text if np.isnan(mark) else f"{text} ≈{mark:.{digits}f}"
    text = text if np.isnan(seed_std) else f"{text} σ{seed_std:.{digits}f}"
    return f"**{text}**" if best else text


def render_protocol_table(table: ProtocolTable) -> str:
    best, digits, nothing = table.best(), table.digits, table.values * np.nan
    spread = table.spread if table.spread is not None else nothing
    seed_std = table.seed_std if table.seed_std is not None else nothing
    unstable = table.rerun_marks if table.rerun_marks is not None else nothing
    shown = pd.DataFrame({dataset: [format_cell(v, c, b, digits, r, sd, u) for v, c, b, r, sd, u in
                                    zip(table.values[dataset], table.ci95[dataset], best[dataset], spread[dataset],
                                        seed_std[dataset], unstable[dataset])]
                          for dataset in table.values.columns}, index=table.values.index)
    means, level = table.means(), table.ranked_means()
    if len(table.values.columns) > 1 and means.notna().any():
        target = level.min() if table.lower_is_better else level.max()
        shown["mean"] = [format_cell(m, float("nan"), t == target and table.is_score, digits)
                         for m, t in zip(means, level)]
    direction = ("label-free, no better direction" if not table.is_score
                 else "lower is better" if table.lower_is_better else "higher is better")
    title = f"### {table.protocol} ({table.metric}, {direction})"
    return f"{title}\n\n{shown.rename_axis('encoder').to_markdown()}"


def skipped_line(skips: pd.DataFrame) -> str:
    """All skipped cells in one line: how many, and why (grouped by reason)."""
    if skips is None or skips.empty:
        return ""
    parts = []
    for reason, group in skips.groupby(skips["reason"].map(reason_kind), sort=False):
        protocols = ", ".join(dict.fromkeys(group["protocol"]))
        parts.append(f"{len(group)} {protocols} cell{'s' if len(group) > 1 else ''} ({reason})")
    return f"Skipped {'; '.join(parts)}. Which ones: `transferbench table --wide`."


def reason_kind(reason: str) -> str:
    """A skip reason without the encoder's name, so one reason covers every encoder it applies to."""
    return "encoder has " + reason.split(" has ", 1)[1] if " has " in reason else reason


def render_report(rows: pd.DataFrame, skips: pd.DataFrame | None = None) -> str:
    """The per-protocol tables, the skipped-cells line and the plain-words summary."""
    parts = [render_protocol_table(t) for t in protocol_tables(rows)]
    parts.append("Cells: value ± 95% CI (bootstrap over test examples; few-shot: over episodes); bold = best "
                 "in its column.")
    if "details" in rows and rows.apply(order_spread, axis=1).notna().any():
        parts.append("↔r: the range r of the linear probe's score when the reference solver re-runs with the rows "
                     "in other orders (`permutations`): differences smaller than r are the protocol's rounding.")
    if "details" in rows and rows["details"].map(lambda d: isinstance(d, dict) and "stability" in d).any():
        parts.append("A cell with `stability: N` reruns (under rounding-level perturbations: features moved by up to "
                     "32 float32 units, train rows reordered, every second feature-task rerun on one thread) shows the "
                     "mean over its run and its reruns (its ± is the first run's). ≈s: they printed differently; "
                     "another CPU's mean of as many runs may lie up to s away (95% prediction half-width from the "
                     "runs' standard deviation). Such a cell without ≈ printed the same every time. Values within "
                     "a ≈ mark of each other count as level: bold, and tied in the summary's correlations.")
    if "seed_values" in rows and rows["seed_values"].map(lambda v: isinstance(v, dict) and len(v) > 1).any():
        parts.append(f"σ: standard deviation over the run's seeds ({seeds_line(rows)}); such a cell's value is "
                     f"the mean over its seeds, and its ± the 95% CI of its lowest seed's run.")
    line = skipped_line(skips)
    if line:
        parts.append(line)
    summary = summary_lines(rows)
    if summary:
        parts.append("## Summary\n\n" + "\n".join(f"- {line}" for line in summary))
    groups = vtab_lines(rows)
    if groups:
        parts.append("## VTAB-1k group means (mean of the tasks' values; VTAB's score is the mean over all 19)\n\n"
                     + "\n".join(f"- {line}" for line in groups))
    shots = lowshot_lines(rows) if "details" in rows.columns else []
    if shots:
        parts.append("## Low-shot curves (mean ± 95% CI over draws, per k labelled images per class)\n\n"
                     + "\n".join(f"- {line}" for line in shots))
    shifts = robustness_lines(rows)
    if shifts:
        parts.append("## Natural distribution shift (ImageNet accuracy → shifted accuracy, with heads fitted on "
                     "ImageNet; effective robustness relative to the fit over these encoders)\n\n"
                     + "\n".join(f"- {line}" for line in shifts))
    return "\n\n".join(parts)


def seeds_line(rows: pd.DataFrame) -> str:
    """Which seeds the multi-seed cells ran, e.g. 'seeds 0, 1, 2 in 18 cells'."""
    runs = rows["seed_values"].map(lambda v: tuple(sorted(v)) if isinstance(v, dict) and len(v) > 1 else None)
    counts = runs.dropna().value_counts(sort=False)
    return "; ".join(f"seeds {', '.join(map(str, seeds))} in {n} cell{'s' if n > 1 else ''}"
                     for seeds, n in counts.items())


def is_baseline(row: pd.Series) -> bool:
    return bool(row["random_init"]) or row["encoder_identity"].get("source") in BASELINE_SOURCES


def comparison_line(rows: pd.DataFrame, encoder: str, baseline: str) -> str | None:
    """'A beats B in x of n cells (significant in s of t tested, p < 0.05)'."""
    cells = rows.set_index(["encoder", "protocol", "dataset"])
    wins = total = significant = tested = 0
    for protocol, dataset in {(p, d) for e, p, d in cells.index if e == encoder}:
        if (baseline, protocol, dataset) not in cells.index:
            continue
        a, b = cells.loc[(encoder, protocol, dataset)], cells.loc[(baseline, protocol, dataset)]
        spec = Metric(a["metric"]).spec
        if not spec.is_score:
            continue
        won = spec.better(a["value"], b["value"])
        p_value = paired_p_value(a, b)
        total, wins = total + 1, wins + won
        if p_value is not None:
            tested += 1
            significant += int(won and p_value < SIGNIFICANCE)
    if not total:
        return None
    return (f"{encoder} beats {baseline} in {wins} of {total} cells (significantly in {significant} of the "
            f"{tested} with a paired test, p < {SIGNIFICANCE})")


def summary_lines(rows: pd.DataFrame) -> list[str]:
    encoders = rows.drop_duplicates("encoder").set_index("encoder")
    baselines = [e for e, row in encoders.iterrows() if is_baseline(row)]
    lines = [comparison_line(rows, encoder, baseline)
             for encoder in encoders.index if encoder not in baselines for baseline in baselines]
    lines = [line for line in lines if line]
    correlation = imagenet_correlation_line(rows)
    return lines + ([correlation] if correlation else []) + label_free_lines(rows)


def label_free_lines(rows: pd.DataFrame) -> list[str]:
    """For each label-free diagnostic: the Spearman correlation of its mean (over datasets) with each
    scored protocol's mean, over the encoders that have both (at least 3)."""
    tables = protocol_tables(rows, with_ci=False)
    scored = [(t.protocol, t.ranked_means().dropna()) for t in tables if t.is_score]
    lines = []
    for diagnostic in (t for t in tables if not t.is_score):
        means, parts = diagnostic.ranked_means().dropna(), []
        for protocol, other in scored:
            both = means.index.intersection(other.index)
            if len(both) >= 3 and means[both].nunique() > 1 and other[both].nunique() > 1:
                fewer = f" ({len(both)} encoders)" if len(both) < len(means) else ""
                parts.append(f"{protocol} {stats.spearmanr(means[both], other[both]).statistic:+.2f}{fewer}")
        if parts:
            lines.append(f"Label-free {diagnostic.protocol} (mean over datasets) vs each protocol's mean, Spearman "
                         f"over {len(means)} encoders: {', '.join(parts)}")
    return lines


def imagenet_correlation_line(rows: pd.DataFrame) -> str | None:
    """Spearman correlation between the encoders' published ImageNet top-1 (`encoder_facts`) and each
    protocol's mean, over the encoders that have both (at least 3)."""
    if "encoder_facts" not in rows.columns:
        return None
    top1 = rows.drop_duplicates("encoder").set_index("encoder")["encoder_facts"].map(
        lambda facts: (facts or {}).get("imagenet_top1", np.nan)).astype(float).dropna()
    if len(top1) < 3:
        return None
    parts = []
    for table in protocol_tables(rows[rows["encoder"].isin(top1.index)], with_ci=False):
        means = table.ranked_means().dropna()
        if len(means) < 3 or not table.is_score:
            continue
        if means.nunique() < 2:
            parts.append(f"{table.protocol} level (no order to correlate)")
            continue
        rho = stats.spearmanr(top1[means.index], means).statistic
        parts.append(f"{table.protocol} {rho:+.2f}" + (" (lower is better)" if table.lower_is_better else ""))
    if not parts:
        return None
    names = ", ".join(f"{e} {v:.2f}" for e, v in top1.items())
    return f"Spearman correlation of ImageNet top-1 ({names}) with each protocol's mean: {', '.join(parts)}"
