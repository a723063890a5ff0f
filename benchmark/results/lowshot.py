"""The low-shot curve (the `lowshot` protocol's accuracy at k labelled images per class) and where it
meets zero-shot on the same encoder and dataset: CLIP's Figure 6 question, "how many labelled examples is
the text prompt worth?". The crossing is read on a log2 axis of shots, between the two k it falls
between, as CLIP's paper reads it."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from benchmark.results import latest_per_cell

LOWSHOT, ZEROSHOT = "lowshot", "zeroshot"


def curves(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per (encoder, dataset, k): the mean over draws and its 95% CI; cells in the rows' order,
    shots ascending within each."""
    latest = latest_per_cell(rows)
    kind = latest.get("protocol_kind", latest["protocol"]).fillna("").where(lambda k: k != "", latest["protocol"])
    records = [{"encoder": row["encoder"], "dataset": row["dataset"], "shots": int(k), "mean": point["mean"],
                "ci95": point.get("ci95")}
               for (_, row), is_lowshot in zip(latest.iterrows(), kind == LOWSHOT) if is_lowshot
               for k, point in (row["details"] or {}).get("curve", {}).items()]
    table = pd.DataFrame(records, columns=["encoder", "dataset", "shots", "mean", "ci95"])
    cell = table[["encoder", "dataset"]].apply(tuple, axis=1) if not table.empty else pd.Series(dtype=object)
    order = {key: i for i, key in enumerate(dict.fromkeys(cell))}
    return table.assign(cell=cell.map(order)).sort_values(["cell", "shots"], ignore_index=True).drop(columns="cell")


def matching_shots(curve: list[tuple[int, float]], zero_shot: float) -> float | None:
    """The shots at which the curve reaches `zero_shot`, interpolated on log2(shots); None when it never
    does within the curve (and the curve's first k when it starts above)."""
    if not curve or curve[-1][1] < zero_shot:
        return None
    if curve[0][1] >= zero_shot:
        return float(curve[0][0])
    for (k1, m1), (k2, m2) in zip(curve, curve[1:]):
        if m1 < zero_shot <= m2:
            fraction = (zero_shot - m1) / (m2 - m1)
            return 2 ** (math.log2(k1) + fraction * (math.log2(k2) - math.log2(k1)))
    return None


def lowshot_lines(rows: pd.DataFrame) -> list[str]:
    """Per encoder and dataset: the curve, and with a zero-shot cell, the shots it is worth."""
    table, lines = curves(rows), []
    zero = latest_per_cell(rows)
    zero = zero[zero["protocol"] == ZEROSHOT].set_index(["encoder", "dataset"])["value"]
    for (encoder, dataset), curve in table.groupby(["encoder", "dataset"], sort=False):
        points = ", ".join(f"{k}: {m:.1f}" + (f" ± {c:.1f}" if pd.notna(c) else "")
                           for k, m, c in zip(curve["shots"], curve["mean"], curve["ci95"]))
        line = f"{encoder} · {dataset}: {points}"
        if (encoder, dataset) in zero.index:
            z = float(zero.loc[(encoder, dataset)])
            shots = matching_shots(list(zip(curve["shots"], curve["mean"])), z)
            line += (f"; zero-shot {z:.1f} is worth about {shots:.1f} shots per class" if shots is not None else
                     f"; zero-shot {z:.1f} is above the whole curve (more than {curve['shots'].max()} shots)")
        lines.append(line)
    return lines


def plot_lowshot(rows: pd.DataFrame, path: Path) -> Path | None:
    """Each dataset's curves (one line per encoder, the CI as a band, log2 shots) with zero-shot as a
    dashed level; None when there is no low-shot row."""
    from benchmark.results.leaderboard import pyplot, save

    table = curves(rows)
    if table.empty:
        return None
    plt, datasets = pyplot(), list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(max(5.0, 3.6 * len(datasets)), 3.4), squeeze=False)
    zero = latest_per_cell(rows)
    zero = zero[zero["protocol"] == ZEROSHOT]
    for ax, dataset in zip(axes.flat, datasets):
        for i, (encoder, curve) in enumerate(table[table["dataset"] == dataset].groupby("encoder", sort=False)):
            color = plt.cm.tab10(i % 10)
            ci = curve["ci95"].astype(float).fillna(0.0)
            ax.plot(curve["shots"], curve["mean"], marker="o", color=color, label=str(encoder))
            ax.fill_between(curve["shots"], curve["mean"] - ci, curve["mean"] + ci, color=color, alpha=0.2)
            level = zero[(zero["encoder"] == encoder) & (zero["dataset"] == dataset)]["value"]
            if not level.empty:
                ax.axhline(float(level.iloc[0]), color=color, linestyle="--", linewidth=1)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(set(table["shots"])), [str(k) for k in sorted(set(table["shots"]))])
        ax.set_xlabel("labelled images per class", fontsize=7)
        ax.set_title(f"{dataset}: low-shot linear probe (dashed: zero-shot)", fontsize=8)
    axes.flat[0].legend(fontsize=6)
    return save(fig, path)
