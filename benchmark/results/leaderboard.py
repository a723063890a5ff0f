"""Leaderboards and the paper's analysis: long and wide CSVs, Markdown, a static sortable HTML page,
correlations of every column with a reference column, and matplotlib plots (heat map, scatter of
reference vs transfer accuracy, per-protocol ranks), all written into one directory."""

from __future__ import annotations

import base64
import hashlib
import html
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from benchmark.errors import UserError
from benchmark.results import with_rerun_means
from benchmark.results.ranking import pairwise_significance, rank_intervals
from benchmark.results.report import rerun_mark
from benchmark.results.stats import cell_ci95
from benchmark.results.table import results_table
from benchmark.vocab import Direction, direction_of

PROVENANCE = ("suite", "suite_version", "package_version", "code_revision", "seed", "cache_keys")
# DINO's cost columns, from the rows' encoder_facts: board column <- fact
COSTS = {"params_M": "parameters_m", "GFLOPs": "gflops", "img_per_s": "extract_images_per_s"}


def column_name(protocol: str, dataset: str) -> str:
    return f"{protocol}·{dataset}"


def flat(wide: pd.DataFrame) -> pd.DataFrame:
    """The wide table with 'protocol·dataset' column names."""
    out = wide.copy()
    out.columns = [column_name(p, d) for p, d in wide.columns]
    return out


def protocols_going(rows: pd.DataFrame, direction: Direction) -> set[str]:
    """Protocols whose metric has `direction` (vocab.METRIC_SPECS), read from the rows' metric column."""
    if "metric" not in rows.columns:
        return set()
    return {p for p, group in rows.groupby("protocol") if direction_of(group["metric"]) is direction}


def lower_is_better_protocols(rows: pd.DataFrame) -> set[str]:
    return protocols_going(rows, Direction.LOWER)


def diagnostic_protocols(rows: pd.DataFrame) -> set[str]:
    """Label-free diagnostics (no better direction): left out of ranks and bests."""
    return protocols_going(rows, Direction.NONE)


def ranks(wide: pd.DataFrame, lower_is_better: set[str] = frozenset()) -> pd.DataFrame:
    """Each column's rank (1 = best, ties share the average rank), in the column's metric direction."""
    return pd.DataFrame({column: wide[column].rank(ascending=column[0] in lower_is_better, method="average")
                         for column in wide.columns}, index=wide.index)


def summary(wide: pd.DataFrame, lower_is_better: set[str] = frozenset()) -> pd.DataFrame:
    """Per encoder: average rank over every column (1 = best; direction-aware) and the mean score of
    each protocol group (its own direction: an ECE mean is better when lower)."""
    table = pd.DataFrame({"average_rank": ranks(wide, lower_is_better).mean(axis=1)})
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
                          "seed": ",".join(map(str, sorted({s for s in group["seed"] if pd.notna(s)} | seeds_behind(group)))),
                          "cache_keys": f"{len(keys)} keys, sha256 {hashlib.sha256(''.join(keys).encode()).hexdigest()[:12]}"})

    return pd.DataFrame({name: record(group) for name, group in rows.groupby("encoder", sort=False)}).T


def seeds_behind(rows: pd.DataFrame) -> set[int]:
    """Every seed behind the rows' values (cells combined over seeds list theirs in `seed_values`)."""
    if "seed_values" not in rows.columns:
        return set()
    return {int(s) for values in rows["seed_values"] if isinstance(values, dict) for s in values}


def leaderboard(rows: pd.DataFrame, suite_version: int | None = None) -> pd.DataFrame:
    """One row per encoder, best average rank first: rank, protocol means, every cell, provenance."""
    wide = results_table(rows)
    scored = wide.drop(columns=[c for c in wide.columns if c[0] in diagnostic_protocols(rows)])
    board = summary(scored, lower_is_better_protocols(rows))
    if "per_example" in rows.columns:  # our rows: intervals from what they store (published tables have none)
        board = board.join(rank_intervals(rows).drop(columns="average_rank"))
    cost = costs(rows)
    board = board[["average_rank"]].join(cost).join(board.drop(columns="average_rank"))  # costs beside the rank
    board = board.join(flat(wide)).join(provenance(rows, suite_version))
    return board.sort_values("average_rank").rename_axis("encoder")


def costs(rows: pd.DataFrame) -> pd.DataFrame:
    """Per encoder, the cost facts its newest rows recorded (parameters, GFLOPs per image at the recorded
    size, extraction images/s on the run's device); no columns for rows without them (published tables)."""
    if "encoder_facts" not in rows.columns:
        return pd.DataFrame(index=pd.Index([], name="encoder"))
    facts = rows.drop_duplicates("encoder", keep="last").set_index("encoder")["encoder_facts"]
    table = pd.DataFrame({column: facts.map(lambda f, k=key: (f or {}).get(k, np.nan)) for column, key in COSTS.items()})
    return table.dropna(axis=1, how="all").astype(float)


def spearman_ci95(x: pd.Series, y: pd.Series, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """The 2.5 and 97.5 percentiles of Spearman's rho over encoders resampled with replacement (draws
    where either side is constant are left out). All draws at once: rho is the Pearson correlation of
    average ranks, which is what scipy's spearmanr computes one draw at a time (measured: 110x slower)."""
    rng, a, b = np.random.default_rng(seed), x.to_numpy(float), y.to_numpy(float)
    idx = np.stack([rng.integers(0, len(a), len(a)) for _ in range(resamples)])
    a, b = a[idx], b[idx]
    varied = (np.ptp(a, axis=1) > 0) & (np.ptp(b, axis=1) > 0)
    if not varied.any():
        return (np.nan, np.nan)
    ranks_a, ranks_b = (stats.rankdata(v[varied], axis=1) for v in (a, b))
    ranks_a -= ranks_a.mean(1, keepdims=True)
    ranks_b -= ranks_b.mean(1, keepdims=True)
    rhos = (ranks_a * ranks_b).sum(1) / np.sqrt((ranks_a ** 2).sum(1) * (ranks_b ** 2).sum(1))
    return tuple(np.percentile(rhos, [2.5, 97.5]))


def correlations(wide: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Spearman (with a bootstrap 95% CI over encoders) and Pearson correlation between the reference
    column and every other column, over the encoders that have both (the paper's ImageNet-vs-transfer
    analysis; with a label-free column as the reference, how well it predicts transfer)."""
    table = flat(wide)
    if reference not in table.columns:
        raise UserError(f"no column {reference!r} to correlate with; columns are {list(table.columns)}")
    records = []
    for column in table.columns.drop(reference):
        both = table[[reference, column]].dropna()
        if len(both) < 3:
            continue
        low, high = spearman_ci95(both[reference], both[column])
        records.append({"column": column, "encoders": len(both),
                        "spearman": stats.spearmanr(both[reference], both[column]).statistic,
                        "spearman_ci_low": low, "spearman_ci_high": high,
                        "pearson": stats.pearsonr(both[reference], both[column]).statistic})
    return pd.DataFrame(records, columns=["column", "encoders", "spearman", "spearman_ci_low", "spearman_ci_high",
                                          "pearson"])


def ci_table(rows: pd.DataFrame) -> pd.DataFrame:
    """95% CI half-widths (`stats.cell_ci95`; NaN where none) laid out like `flat(results_table(rows))`."""
    if "per_example" not in rows.columns:  # published tables
        return flat(results_table(rows)) * np.nan
    with_ci = rows.assign(value=[cell_ci95(row) for _, row in rows.iterrows()]).fillna({"value": np.nan})
    return flat(results_table(with_ci))


def seed_std_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Standard deviations over seeds (`results.over_seeds`; NaN for one seed) laid out like `ci_table`."""
    if "seed_std" not in rows.columns:
        return flat(results_table(rows)) * np.nan
    return flat(results_table(rows.assign(value=rows["seed_std"].astype(float))))


def stability_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Each cell's ≈ mark over its stability reruns (`report.rerun_mark`; 0 where they print the same, NaN
    where there are none) laid out like `ci_table`."""
    if "details" not in rows.columns:
        return flat(results_table(rows)) * np.nan
    runs = (rows if "stability_runs" in rows else with_rerun_means(rows))["stability_runs"]
    # at the one decimal the board prints
    marks = [np.nan if r is None else np.nan_to_num(rerun_mark(r, 1), nan=0.0) for r in runs]
    return flat(results_table(rows.assign(value=marks)))


def write_leaderboard(rows: pd.DataFrame, out_dir: Path, title: str, reference: str | None = None,
                      suite_version: int | None = None) -> list[Path]:
    """Everything into `out_dir`: leaderboard_long.csv, leaderboard_wide.csv, leaderboard.md,
    leaderboard.html (with the plots embedded), correlations.csv and the PNG plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    board, wide = leaderboard(rows, suite_version), results_table(rows)
    scored = wide.drop(columns=[c for c in wide.columns if c[0] in diagnostic_protocols(rows)])  # scores only
    plots = [plot_heatmap(scored, out_dir / "heatmap.png", title),
             plot_ranks(scored, out_dir / "ranks.png", title, lower_is_better_protocols(rows))]
    if reference:
        table = correlations(wide, reference)
        table.to_csv(out_dir / "correlations.csv", index=False, float_format="%.3f")
        plots.append(plot_scatter(wide, reference, out_dir / "scatter.png", title))
    if "details" in rows.columns:
        from benchmark.results.lowshot import plot_lowshot

        plots += [p for p in [plot_lowshot(rows, out_dir / "lowshot.png")] if p is not None]
    from benchmark.results.shift import plot_robustness

    plots += [p for p in [plot_robustness(rows, out_dir / "robustness.png")] if p is not None]
    long_columns = [c for c in rows.columns if c not in ("id",)]
    pairwise = pairwise_significance(rows) if "per_example" in rows.columns else None
    written = {"leaderboard_long.csv": rows[long_columns].to_csv(index=False),
               "leaderboard_wide.csv": board.to_csv(float_format="%.2f"),
               "leaderboard.md": f"# {title}\n\n" + board.to_markdown(floatfmt=".2f") + "\n" + (
                   "" if pairwise is None else "\n## Significant wins (row over column; paired tests, Holm-corrected "
                   "over the pair's cells, p < 0.05)\n\n" + pairwise.to_markdown() + "\n"),
               "leaderboard.html": html_page(board, ci_table(rows), lower_is_better_protocols(rows), title, plots,
                                             diagnostic_protocols(rows), seed_std_table(rows), stability_table(rows))}
    if pairwise is not None:
        written["pairwise_significance.csv"] = pairwise.to_csv()
    paths = []
    for name, text in written.items():
        (out_dir / name).write_text(text)
        paths.append(out_dir / name)
    return paths + plots + ([out_dir / "correlations.csv"] if reference else [])


SORT_SCRIPT = """
document.querySelectorAll('#leaderboard thead th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0];
  const rows = Array.from(body.rows);
  const lower = th.dataset.lower === '1';           // best first on the first click, in the metric's direction
  const bestFirst = th.dataset.order !== 'best';
  th.closest('tr').querySelectorAll('th').forEach(h => delete h.dataset.order);
  th.dataset.order = bestFirst ? 'best' : 'worst';
  const ascending = lower === bestFirst;
  const key = r => { const v = r.cells[col].dataset.value; const n = parseFloat(v);
                     return v === undefined || v === '' ? null : (isNaN(n) ? v : n); };
  rows.sort((a, b) => { const x = key(a), y = key(b);
    if (x === null || y === null) return (x === null) - (y === null);   // empty cells last
    return (x > y ? 1 : x < y ? -1 : 0) * (ascending ? 1 : -1); });
  rows.forEach(r => body.appendChild(r));
}));
"""

STYLE = """
body{font-family:system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:20px;margin:0 0 4px}p.legend{margin:4px 0 12px;color:#555;font-size:13px}
.scroll{overflow:auto;max-height:75vh;border:1px solid #ccc}
table{border-collapse:separate;border-spacing:0;font-size:13px}
th,td{padding:4px 8px;border-bottom:1px solid #e4e4e4;text-align:right;white-space:nowrap;background:#fff}
thead th{position:sticky;top:0;z-index:2;background:#f3f3f3;cursor:pointer;vertical-align:bottom}
thead th .protocol{display:block;font-size:11px;color:#666;font-weight:normal}
th:first-child,td:first-child{position:sticky;left:0;z-index:1;text-align:left;border-right:1px solid #ccc}
thead th:first-child{z-index:3}
td.summary{background:#fafafa}
td.best{background:#dff3df;font-weight:600}td .ci{color:#777;font-size:11px}
details summary{cursor:pointer}details dl{font-size:11px;color:#444;margin:4px 0;white-space:normal;max-width:420px}
details dt{font-weight:600}details dd{margin:0 0 2px 8px;word-break:break-all}
.plots img{max-width:100%;margin:12px 0;border:1px solid #ddd}
"""


def html_page(board: pd.DataFrame, ci95: pd.DataFrame, lower_is_better: set[str], title: str,
              plots: list[Path] = (), diagnostics: set[str] = frozenset(), seed_std: pd.DataFrame | None = None,
              stability: pd.DataFrame | None = None) -> str:
    """A self-contained page: one row per encoder, header and first column sticky, click a header to sort
    (best first, in the metric's direction), `value ± CI` (and `σ` over seeds), each column's best
    highlighted, the encoder's provenance one click away, plots embedded."""
    seed_std = ci95 * np.nan if seed_std is None else seed_std
    stability = ci95 * np.nan if stability is None else stability
    scores = [c for c in board.columns if c == "average_rank" or c in COSTS or "·" in c]
    facts = [c for c in board.columns if c not in scores and not c.startswith("rank_ci")]
    lower = {c for c in scores if c == "average_rank" or column_protocol(c) in lower_is_better}
    undirected = {c for c in scores if column_protocol(c) in diagnostics or c in COSTS}
    best = {c: None if c in undirected else board[c].min() if c in lower else board[c].max() for c in scores}
    header = "<th>encoder</th>" + "".join(header_cell(c, c in lower, c in undirected) for c in scores)
    body = [table_row(encoder, row, scores, facts, ci95, lower, best, seed_std, stability)
            for encoder, row in board.iterrows()]
    seeds_legend = (" σ: standard deviation over seeds (the value is their mean; ± the lowest seed's CI)."
                    if seed_std.notna().any().any() else "")
    images = "".join(f'<img alt="{html.escape(p.name)}" src="data:image/png;base64,'
                     f'{base64.b64encode(p.read_bytes()).decode()}">' for p in plots)
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            "<p class='legend'>Cells: value ± 95% CI (bootstrap over test examples; few-shot: over episodes)."
            f"{seeds_legend} "
            "▲ higher is better, ▼ lower is better (label-free diagnostics have neither); the best of each column "
            "is highlighted. Average rank: [95% interval with test examples redrawn | with datasets resampled]. "
            "Click a header to "
            "sort (best first), an encoder for its provenance.</p>"
            f"<div class='scroll'><table id='leaderboard'><thead><tr>{header}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div><div class='plots'>{images}</div>"
            f"<script>{SORT_SCRIPT}</script></body></html>\n")


def column_protocol(column: str) -> str | None:
    """The protocol of a board column: "linear·digits" and "mean·linear" -> "linear"; "average_rank" -> None."""
    if column.startswith("mean·"):
        return column.split("·", 1)[1]
    return column.split("·", 1)[0] if "·" in column else None


def header_cell(column: str, lower: bool, undirected: bool = False) -> str:
    arrow = "" if undirected else "▼" if lower else "▲"
    if "·" in column:
        group, name = column.split("·", 1)
        label = f"<span class='protocol'>{html.escape(group)}</span>{html.escape(name)} {arrow}"
    else:
        label = f"{html.escape(column.replace('_', ' '))} {arrow}"
    return f"<th data-lower='{int(lower)}'>{label}</th>"


def table_row(encoder: str, row: pd.Series, scores: list[str], facts: list[str], ci95: pd.DataFrame,
              lower: set[str], best: dict[str, float], seed_std: pd.DataFrame, stability: pd.DataFrame) -> str:
    details = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(row[k]))}</dd>" for k in facts)
    cells = [f"<td data-value='{html.escape(str(encoder))}'><details><summary>{html.escape(str(encoder))}"
             f"</summary><dl>{details}</dl></details></td>"]
    for column in scores:
        value = row[column]
        if pd.isna(value):
            cells.append("<td data-value=''>--</td>")
            continue
        ci = ci95.at[encoder, column] if column in ci95.columns and encoder in ci95.index else np.nan
        shown = f"{value:.2f}" if column == "average_rank" else f"{value:,.3g}" if column in COSTS else f"{value:.1f}"
        if not pd.isna(ci):
            shown += f" <span class='ci'>± {ci:.1f}</span>"
        sd = seed_std.at[encoder, column] if column in seed_std.columns and encoder in seed_std.index else np.nan
        if not pd.isna(sd):
            shown += f" <span class='ci' title='standard deviation over seeds'>σ {sd:.1f}</span>"
        shown += stability_mark(stability.at[encoder, column] if column in stability.columns
                                and encoder in stability.index else np.nan)
        if column == "average_rank" and "rank_ci_examples" in row.index:
            shown += (f" <span class='ci' title='95% intervals: test examples redrawn; datasets resampled'>"
                      f"[{row['rank_ci_examples']} | {row['rank_ci_datasets']}]</span>")
        classes = " ".join(c for c in ("best" if value == best[column] else "",
                                      "summary" if "·" not in column or column.startswith("mean·") else "") if c)
        cells.append(f"<td class='{classes}' data-value='{value}'>{shown}</td>")
    return f"<tr>{''.join(cells)}</tr>"


def stability_mark(mark: float) -> str:
    """The cell's stability reruns in a tooltip: their ≈ mark, or that they all printed the same."""
    if pd.isna(mark):
        return ""
    text = f"≈{mark:.1f}" if mark > 0 else "stable"
    return (f" <span class='ci' title='reruns under rounding-level perturbations (stability): the mean of as many "
            f"runs on another CPU may lie up to {mark:.2f} away (95%)'>{text}</span>")


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
    return save(fig, path, top=1.0 - 0.35 / fig.get_figheight())


def plot_ranks(wide: pd.DataFrame, path: Path, title: str, lower_is_better: set[str] = frozenset()) -> Path:
    plt = pyplot()
    protocols = list(dict.fromkeys(wide.columns.get_level_values(0)))
    fig, axes = plt.subplots(1, len(protocols), figsize=(4 * len(protocols), 4), squeeze=False)
    for ax, protocol in zip(axes.flat, protocols):
        ranked = wide[protocol].rank(axis=0, ascending=protocol in lower_is_better, method="average")
        for i, (encoder, row) in enumerate(ranked.iterrows()):  # tab20: distinct colours for up to 20 encoders
            ax.plot(range(len(row)), row.to_numpy(), marker="o", color=plt.cm.tab20(i % 20), label=str(encoder))
        ax.set_xticks(range(len(ranked.columns)), ranked.columns, rotation=45, ha="right", fontsize=7)
        ax.invert_yaxis()
        ax.set_ylabel("rank (1 = best)")
        ax.set_title(f"{protocol}: rank per dataset", fontsize=9)
    axes.flat[-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"{title}: ranks")
    return save(fig, path)


def save(fig, path: Path, top: float = 1.0) -> Path:
    fig.tight_layout(rect=(0, 0, 1, top))  # top < 1 leaves room for a suptitle
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path
