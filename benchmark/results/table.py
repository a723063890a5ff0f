"""Results tables laid out like Ericsson et al. (2021): one row per encoder, one column per dataset,
columns grouped by protocol."""

from __future__ import annotations

import pandas as pd

from benchmark.errors import UserError

FORMATS = ("markdown", "csv", "latex")


def results_table(rows: pd.DataFrame, skips: pd.DataFrame | None = None) -> pd.DataFrame:
    """Pivot result rows to encoders x (protocol, dataset): protocol groups, datasets inside each, all in
    first-seen order. Skipped cells (see `skip_notes`) are empty (NaN)."""
    if rows.empty and (skips is None or skips.empty):
        raise UserError("no results to show yet; run `transferbench evaluate` first (or check --results/--suite)")
    parts = [rows[["encoder", "dataset", "protocol", "value"]]]
    if skips is not None and not skips.empty:
        parts.append(skips[["encoder", "dataset", "protocol"]].assign(value=float("nan")))
    cells = pd.concat(parts)
    table = cells.groupby(["encoder", "protocol", "dataset"], sort=False)["value"].last().unstack(
        ["protocol", "dataset"])
    order = lambda column: list(dict.fromkeys(cells[column]))
    columns = [(p, d) for p in order("protocol") for d in order("dataset") if (p, d) in table.columns]
    table = table.loc[order("encoder"), columns]
    table.columns = pd.MultiIndex.from_tuples(columns, names=["protocol", "dataset"])
    return table


def skip_notes(skips: pd.DataFrame) -> str:
    """One line per distinct reason a cell was skipped, for printing under a table."""
    if skips is None or skips.empty:
        return ""
    lines = ["Skipped cells (--):"]
    for reason, group in skips.groupby("reason", sort=False):
        cells = ", ".join(sorted({f"{p}·{d}" for p, d in zip(group["protocol"], group["dataset"])}))
        lines.append(f"- {', '.join(dict.fromkeys(group['encoder']))} / {cells}: {reason}")
    return "\n".join(lines)


def render(table: pd.DataFrame, fmt: str = "markdown", digits: int = 1) -> str:
    if fmt not in FORMATS:
        raise UserError(f"table format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "csv":
        return table.to_csv(float_format=f"%.{digits + 1}f")
    if fmt == "latex":
        return table.to_latex(float_format=f"%.{digits}f", multicolumn=True, multicolumn_format="c",
                              na_rep="--")
    flat = table.astype(object).where(table.notna(), None)  # tabulate prints missingval only for None
    flat.columns = [f"{protocol} · {dataset}" for protocol, dataset in table.columns]
    return flat.to_markdown(floatfmt=f".{digits}f", missingval="--")
