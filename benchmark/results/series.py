"""`leaderboard --series`: a training run's checkpoints (`<series>@step<N>` encoders) as curves of each
cell's metric against the step, with 95% bands, and per cell the best checkpoint and whether its lead
over the runner-up holds up in the paired test (benchmark.results.stats)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from benchmark.errors import UserError
from benchmark.results import latest_per_cell
from benchmark.results.leaderboard import pyplot, save
from benchmark.results.report import SIGNIFICANCE, paired_p_value
from benchmark.results.stats import cell_ci95
from benchmark.vocab import Direction, direction_of

LABEL = re.compile(r"^(?P<series>.+)@step(?P<step>\d+)$")


def series_label(series: str, step: int) -> str:
    """The encoder name of a series' checkpoint: what `evaluate --series` and `evaluate_model(step=)` write."""
    return f"{series}@step{step}"


def series_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The latest rows of encoders named `<series>@step<N>`, with `series` and `step` columns."""
    latest = latest_per_cell(rows) if not rows.empty else rows
    parsed = latest["encoder"].map(lambda label: LABEL.match(str(label))) if not latest.empty else pd.Series()
    kept = latest[parsed.notna()] if not latest.empty else latest
    if kept.empty:
        raise UserError("no checkpoint series in these results: evaluate one with `evaluate --series SPEC` or "
                        "`evaluate_model(..., step=N)` (encoders named <series>@step<N>)")
    matches = parsed[parsed.notna()]
    return kept.assign(series=[m.group("series") for m in matches], step=[int(m.group("step")) for m in matches])


def series_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per (series, protocol, dataset, step): value and its 95% CI half-width."""
    table = series_rows(rows)
    table = table.assign(ci95=[cell_ci95(row) for _, row in table.iterrows()])
    return table[["series", "protocol", "dataset", "metric", "step", "value", "ci95"]].sort_values(
        ["series", "protocol", "dataset", "step"], ignore_index=True)


def best_checkpoint_lines(rows: pd.DataFrame) -> list[str]:
    """Per series and cell: the best step, and the paired test of its lead over the runner-up."""
    table, lines = series_rows(rows), []
    for (series, protocol, dataset), cell in table.groupby(["series", "protocol", "dataset"], sort=False):
        direction = direction_of(cell["metric"])
        if direction is Direction.NONE or len(cell) < 2:
            continue
        ordered = cell.sort_values("value", ascending=direction is Direction.LOWER, kind="stable")
        best, second = ordered.iloc[0], ordered.iloc[1]
        p_value = paired_p_value(best, second)
        verdict = ("no paired test possible" if p_value is None else
                   f"p = {p_value:.3f}, {'significant' if p_value < SIGNIFICANCE else 'not significant'}")
        lines.append(f"{series} {protocol}·{dataset}: best step {best['step']} ({best['value']:.2f}); ahead of step "
                     f"{second['step']} ({second['value']:.2f}) by {abs(best['value'] - second['value']):.2f}, {verdict}")
    return lines


def plot_series(table: pd.DataFrame, path: Path) -> Path:
    """One panel per (protocol, dataset): each series' metric against the step, its CI as a band."""
    plt = pyplot()
    cells = list(dict.fromkeys(zip(table["protocol"], table["dataset"])))
    from matplotlib.ticker import MaxNLocator

    cols, rows = min(4, len(cells)), -(-len(cells) // min(4, len(cells)))
    fig, axes = plt.subplots(rows, cols, figsize=(max(5.5, 3.4 * cols), 2.8 * rows + 0.6), squeeze=False)
    for ax, (protocol, dataset) in zip(axes.flat, cells):
        for series, line in table[(table["protocol"] == protocol) & (table["dataset"] == dataset)].groupby("series"):
            ci = line["ci95"].astype(float).fillna(0.0).to_numpy()
            ax.plot(line["step"], line["value"], marker="o", label=series)
            ax.fill_between(line["step"], line["value"] - ci, line["value"] + ci, alpha=0.25)
        ax.set_title(f"{protocol}·{dataset}", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("step", fontsize=7)
        ax.set_ylabel(str(table[table["protocol"] == protocol]["metric"].iloc[0]), fontsize=7)
    for ax in list(axes.flat)[len(cells):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.suptitle("checkpoint series: metric against step (bands: 95% CI)", fontsize=10)
    return save(fig, path, top=1.0 - 0.35 / fig.get_figheight())


def write_series(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    table = series_table(rows)
    table.to_csv(out_dir / "series.csv", index=False)
    (out_dir / "series.md").write_text("\n".join(f"- {line}" for line in best_checkpoint_lines(rows)) + "\n")
    return [out_dir / "series.csv", out_dir / "series.md", plot_series(table, out_dir / "series.png")]


