"""Published reference tables (results/reference/NAME.csv), in the same long format as our results
plus `ci95`, `source` and `citation` columns, and the comparison of our numbers with them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.errors import UserError
from benchmark.registry import unknown_name_message

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"  # results/reference/ (a link), in the wheel
REFERENCE_COLUMNS = ("suite", "encoder", "dataset", "protocol", "metric", "value", "ci95", "source", "citation")


def available_references() -> list[str]:
    return sorted(p.stem for p in REFERENCE_DIR.glob("*.csv"))


def load_reference(name: str) -> pd.DataFrame:
    path = REFERENCE_DIR / f"{name}.csv"
    if not path.is_file():
        raise UserError(unknown_name_message("reference table", name, available_references()))
    frame = pd.read_csv(path)
    missing = set(REFERENCE_COLUMNS) - set(frame.columns)
    if missing:
        raise UserError(f"{path} lacks the columns {sorted(missing)}")
    return frame


def compare(ours: pd.DataFrame, reference: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """Our cells next to the published ones: one row per (reference encoder, protocol, dataset) that we
    also measured. `names` maps our encoder labels to the reference's encoder names."""
    mine = ours.assign(encoder=ours["encoder"].map(names))
    mine = mine.dropna(subset=["encoder"])[["encoder", "protocol", "dataset", "value"]]
    joined = reference[["encoder", "protocol", "dataset", "value"]].merge(
        mine, on=["encoder", "protocol", "dataset"], suffixes=("_published", "_ours"))
    return joined.rename(columns={"value_published": "published", "value_ours": "ours"}).assign(
        difference=lambda f: f["ours"] - f["published"])
