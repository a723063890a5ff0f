"""Leaderboards and the paper's analysis: long and wide CSVs, Markdown, a static sortable HTML page,
correlations of every column with a reference column, and matplotlib plots (heat map, scatter of
reference vs transfer accuracy, per-protocol ranks), all written into one directory."""

from __future__ import annotations

import hashlib
import html
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from benchmark.errors import UserError
from benchmark.results.table import results_table

PROVENANCE = ("suite", "suite_version", "package_version", "code_revision", "seed", "cache_keys")


def column_name(protocol: str, dataset: str) -> str:
    return f"{protocol}·{dataset}"


def flat(wide: pd.DataFrame) -> pd.DataFrame:
    """The wide table with 'protocol·dataset' column names."""
    out = wide.copy()
    out.columns = [column_name(p, d) for p, d in wide.columns]
    return out


def summary(wide: pd.DataFrame) -> pd.DataFrame:
    """Per encoder: average rank over every column (1 = best; ties share ranks) and the average score
    of each protocol group."""
    ranks = wide.rank(axis=0, ascending=False, method="average")
    table = pd.DataFrame({"average_rank": ranks.mean(axis=1)})
    for protocol in dict.fromkeys(wide.columns.get_level_values(0)):
        table[f"mean·{protocol}"] = wide[protocol].mean(axis=1)
    return table


def provenance(rows: pd.DataFrame, suite_version: int | None) -> pd.DataFrame:
    """One provenance record per encoder: versions, revisions, seeds, and a digest of its cache keys."""
    if "code_revision" not in rows.columns:  # published tables carry a citation instead
        return rows.groupby("encoder", sort=False).agg(citation=("citation", "first"))

    def record(group: pd.DataFrame) -> pd.Series:
        keys = sorted({k for keys in group["cache_keys"] for k in keys.values()})
        return pd.Series({"suite": ",".join(sorted(set(group["suite"]))), "suite_version": suite_version,
                          "package_version": ",".join(sorted(set(group["package_version"]))),
                          "code_revision": ",".join(sorted(set(group["code_revision"]))),
                          "seed": ",".join(str(s) for s in sorted(set(group["seed"]))),
                          "cache_keys": f"{len(keys)} keys, sha256 {hashlib.sha256(''.join(keys).encode()).hexdigest()[:12]}"})

    return pd.DataFrame({name: record(group) for name, group in rows.groupby("encoder", sort=False)}).T


def leaderboard(rows: pd.DataFrame, suite_version: int | None = None) -> pd.DataFrame:
    """One row per encoder, best average rank first: rank, protocol means, every cell, provenance."""
    wide = results_table(rows)
    board = summary(wide).join(flat(wide)).join(provenance(rows, suite_version))
    return board.sort_values("average_rank").rename_axis("encoder")


def correlations(wide: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Spearman and Pearson correlation between the reference column and every other column, over
    the encoders that have both (the paper's ImageNet-vs-transfer analysis)."""
    table = flat(wide)
    if reference not in table.columns:
        raise UserError(f"no column {reference!r} to correlate with; columns are {list(table.columns)}")
    records = []
    for column in table.columns.drop(reference):
        both = table[[reference, column]].dropna()
        if len(both) < 3:
            continue
        records.append({"column": column, "encoders": len(both),
                        "spearman": stats.spearmanr(both[reference], both[column]).statistic,
                        "pearson": stats.pearsonr(both[reference], both[column]).statistic})
    return pd.DataFrame(records, columns=["column", "encoders", "spearman", "pearson"])


def write_leaderboard(rows: pd.DataFrame, out_dir: Path, title: str, reference: str | None = None,
                      suite_version: int | None = None) -> list[Path]:
    """Everything into `out_dir`: leaderboard_long.csv, leaderboard_wide.csv, leaderboard.md,
    leaderboard.html, correlations.csv and the PNG plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    board, wide = leaderboard(rows, suite_version), results_table(rows)
    long_columns = [c for c in rows.columns if c not in ("id",)]
    written = {"leaderboard_long.csv": rows[long_columns].to_csv(index=False),
               "leaderboard_wide.csv": board.to_csv(float_format="%.2f"),
               "leaderboard.md": f"# {title}\n\n" + board.to_markdown(floatfmt=".2f") + "\n",
               "leaderboard.html": html_page(board, title)}
    paths = []
    for name, text in written.items():
        (out_dir / name).write_text(text)
        paths.append(out_dir / name)
    paths.append(plot_heatmap(wide, out_dir / "heatmap.png", title))
    paths.append(plot_ranks(wide, out_dir / "ranks.png", title))
    if reference:
        table = correlations(wide, reference)
        table.to_csv(out_dir / "correlations.csv", index=False, float_format="%.3f")
        paths += [out_dir / "correlations.csv", plot_scatter(wide, reference, out_dir / "scatter.png", title)]
    return paths


SORT_SCRIPT = """
document.querySelectorAll('th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0];
  const rows = Array.from(body.rows);
  const up = th.dataset.order !== 'asc';
  th.dataset.order = up ? 'asc' : 'desc';
  const key = r => { const t = r.cells[col].dataset.value ?? r.cells[col].textContent;
                     const n = parseFloat(t); return isNaN(n) ? t : n; };
  rows.sort((a, b) => { const x = key(a), y = key(b); return (x > y ? 1 : x < y ? -1 : 0) * (up ? 1 : -1); });
  rows.forEach(r => body.appendChild(r));
}));
"""


def html_page(board: pd.DataFrame, title: str) -> str:
    """A self-contained page: one row per encoder; click a header to sort by it."""
    header = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["encoder", *board.columns])
    body = []
    for encoder, row in board.iterrows():
        cells = [f'<td data-value="{html.escape(str(encoder))}">{html.escape(str(encoder))}</td>']
        for value in row:
            if isinstance(value, (float, np.floating)):
                shown = "--" if np.isnan(value) else f"{value:.2f}"
                cells.append(f'<td data-value="{"" if np.isnan(value) else value}">{shown}</td>')
            else:
                cells.append(f"<td>{html.escape(str(value))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:2px 6px;text-align:right}th{cursor:pointer;background:#eee}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>Click a column header to sort. Rows carry their provenance.</p>"
            f"<table id='leaderboard'><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"<script>{SORT_SCRIPT}</script></body></html>\n")


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_heatmap(wide: pd.DataFrame, path: Path, title: str) -> Path:
    plt = pyplot()
    table = flat(wide)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(table.columns), 1.5 + 0.35 * len(table)))
    image = ax.imshow(table.to_numpy(dtype=float), aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(table.columns)), table.columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(table)), table.index, fontsize=7)
    for (i, j), value in np.ndenumerate(table.to_numpy(dtype=float)):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=6, color="white")
    fig.colorbar(image, ax=ax, label="score (%)")
    ax.set_title(f"{title}: results")
    return save(fig, path)


def plot_scatter(wide: pd.DataFrame, reference: str, path: Path, title: str) -> Path:
    plt = pyplot()
    table, corr = flat(wide), correlations(wide, reference).set_index("column")
    columns = list(corr.index)
    cols = min(4, max(1, len(columns)))
    rows = max(1, -(-len(columns) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax, column in zip(axes.flat, columns):
        both = table[[reference, column]].dropna()
        ax.scatter(both[reference], both[column], s=14)
        ax.set_xlabel(reference, fontsize=7)
        ax.set_ylabel(column, fontsize=7)
        ax.set_title(f"{column}\nSpearman {corr.loc[column, 'spearman']:.2f}, "
                     f"Pearson {corr.loc[column, 'pearson']:.2f}", fontsize=7)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    fig.suptitle(f"{title}: {reference} vs transfer")
    return save(fig, path)


def plot_ranks(wide: pd.DataFrame, path: Path, title: str) -> Path:
    plt = pyplot()
    protocols = list(dict.fromkeys(wide.columns.get_level_values(0)))
    fig, axes = plt.subplots(1, len(protocols), figsize=(4 * len(protocols), 4), squeeze=False)
    for ax, protocol in zip(axes.flat, protocols):
        ranks = wide[protocol].rank(axis=0, ascending=False, method="average")
        for i, (encoder, row) in enumerate(ranks.iterrows()):  # tab20: distinct colours for up to 20 encoders
            ax.plot(range(len(row)), row.to_numpy(), marker="o", color=plt.cm.tab20(i % 20), label=str(encoder))
        ax.set_xticks(range(len(ranks.columns)), ranks.columns, rotation=45, ha="right", fontsize=7)
        ax.invert_yaxis()
        ax.set_ylabel("rank (1 = best)")
        ax.set_title(f"{protocol}: rank per dataset", fontsize=9)
    axes.flat[-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"{title}: ranks")
    return save(fig, path)


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path
