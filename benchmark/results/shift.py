"""Natural distribution shift (Taori et al. 2020): each encoder's accuracy on a shifted test set (ImageNet-V2,
-Sketch, -A, -R) against its ImageNet accuracy, with the heads of one protocol column fitted on ImageNet.

Taori et al. find that, across models, shifted accuracy follows ImageNet accuracy along a line once both are
logit-transformed; effective robustness is how far a model sits above that line. They fit the line over 200+
ImageNet-trained models. Here it is fitted over the encoders in the results (at least `MIN_FIT` of them), so
a value says "more robust than this table's trend", and it is printed with the fit it is relative to.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.groups import IMAGENET_SHIFTS, SHIFT_SOURCE
from benchmark.results import latest_per_cell

MIN_FIT = 3  # encoders needed to fit the baseline line
CLIP = 1e-3  # accuracies are clipped to [CLIP, 1 - CLIP] before the logit (0% and 100% have none)


def logit(percent: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(percent, dtype=np.float64) / 100.0, CLIP, 1 - CLIP)
    return np.log(p / (1 - p))


def expit_percent(x: np.ndarray) -> np.ndarray:
    return 100.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def shift_points(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per (protocol column, shift, encoder) with both accuracies: `imagenet` and `shifted`."""
    latest = latest_per_cell(rows)
    source = latest[latest["dataset"] == SHIFT_SOURCE].set_index(["protocol", "encoder"])["value"]
    shifted = latest[latest["dataset"].isin(IMAGENET_SHIFTS)]
    records = [{"protocol": row["protocol"], "shift": row["dataset"], "encoder": row["encoder"],
                "imagenet": float(source.loc[(row["protocol"], row["encoder"])]), "shifted": float(row["value"])}
               for _, row in shifted.iterrows() if (row["protocol"], row["encoder"]) in source.index]
    return pd.DataFrame(records, columns=["protocol", "shift", "encoder", "imagenet", "shifted"])


def baseline_fit(points: pd.DataFrame) -> tuple[float, float] | None:
    """(slope, intercept) of logit(shifted) on logit(imagenet) by least squares; None below MIN_FIT encoders
    or when every encoder has the same ImageNet accuracy."""
    if len(points) < MIN_FIT or points["imagenet"].nunique() < 2:
        return None
    slope, intercept = np.polyfit(logit(points["imagenet"]), logit(points["shifted"]), 1)
    return float(slope), float(intercept)


def effective_robustness(rows: pd.DataFrame) -> pd.DataFrame:
    """`shift_points` with the column's fit and each encoder's effective robustness: its shifted accuracy
    minus the fit's prediction from its ImageNet accuracy (NaN where there is no fit)."""
    parts = []
    for _, points in shift_points(rows).groupby(["protocol", "shift"], sort=False):
        fit = baseline_fit(points)
        predicted = expit_percent(fit[0] * logit(points["imagenet"]) + fit[1]) if fit else np.nan
        parts.append(points.assign(slope=fit[0] if fit else np.nan, intercept=fit[1] if fit else np.nan,
                                   effective_robustness=points["shifted"] - predicted))
    columns = [*shift_points(rows.iloc[:0]).columns, "slope", "intercept", "effective_robustness"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def robustness_lines(rows: pd.DataFrame) -> list[str]:
    """Per protocol column and shift: the fit, then each encoder's accuracies, drop and effective robustness."""
    lines = []
    for (protocol, shift), points in effective_robustness(rows).groupby(["protocol", "shift"], sort=False):
        fit = (no_fit_reason(points) if np.isnan(points["slope"].iloc[0]) else
               f"fit over {len(points)} encoders: logit(shifted) = {points['slope'].iloc[0]:.2f} logit(imagenet) "
               f"{points['intercept'].iloc[0]:+.2f}")
        scores = "; ".join(
            f"{r.encoder} {r.imagenet:.1f} → {r.shifted:.1f} ({r.shifted - r.imagenet:+.1f}"
            + ("" if np.isnan(r.effective_robustness) else f", effective robustness {r.effective_robustness:+.1f}")
            + ")" for r in points.itertuples())
        lines.append(f"{protocol} · {shift}: {scores}; {fit}")
    return lines


def no_fit_reason(points: pd.DataFrame) -> str:
    if len(points) < MIN_FIT:
        return f"no fit ({len(points)} encoder{'s' if len(points) > 1 else ''}; the line needs {MIN_FIT})"
    return "no fit (every encoder has the same ImageNet accuracy)"


def plot_robustness(rows: pd.DataFrame, path: Path) -> Path | None:
    """One panel per shift: shifted accuracy against ImageNet accuracy (logit axes, as Taori et al.), one
    marker per encoder and protocol column, each column's fitted line, and y = x; None without shift rows."""
    from benchmark.results.leaderboard import pyplot, save

    table = effective_robustness(rows)
    if table.empty:
        return None
    plt, shifts = pyplot(), list(dict.fromkeys(table["shift"]))
    fig, axes = plt.subplots(1, len(shifts), figsize=(max(5.0, 3.8 * len(shifts)), 3.6), squeeze=False)
    for ax, shift in zip(axes.flat, shifts):
        draw_shift_panel(ax, table[table["shift"] == shift], plt)
        ax.set_title(f"{shift} against {SHIFT_SOURCE}", fontsize=8)
    axes.flat[0].legend(fontsize=6)
    return save(fig, path)


def draw_shift_panel(ax, table: pd.DataFrame, plt) -> None:
    values = np.concatenate([logit(table["imagenet"]), logit(table["shifted"])])
    low, high = float(values.min()) - 0.5, float(values.max()) + 0.5
    grid = np.linspace(low, high, 50)
    ax.plot(grid, grid, color="#999", linestyle=":", linewidth=1, label="y = x")
    for i, (protocol, points) in enumerate(table.groupby("protocol", sort=False)):
        color = plt.cm.tab10(i % 10)
        x, y = logit(points["imagenet"]), logit(points["shifted"])
        ax.scatter(x, y, color=color, s=18, label=str(protocol))
        for name, xi, yi in zip(points["encoder"], x, y):
            ax.annotate(str(name), (xi, yi), fontsize=5, xytext=(2, 2), textcoords="offset points")
        if not np.isnan(points["slope"].iloc[0]):
            ax.plot(grid, points["slope"].iloc[0] * grid + points["intercept"].iloc[0], color=color, linewidth=1)
    ticks = np.array([1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9])
    ticks = ticks[(logit(ticks) >= low) & (logit(ticks) <= high)]
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xticks(logit(ticks), [f"{t:g}" for t in ticks], fontsize=6)
    ax.set_yticks(logit(ticks), [f"{t:g}" for t in ticks], fontsize=6)
    ax.set_xlabel(f"{SHIFT_SOURCE} accuracy (%, logit axis)", fontsize=7)
    ax.set_ylabel("shifted accuracy (%, logit axis)", fontsize=7)
