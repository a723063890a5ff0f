"""Write results/reference/ericsson2021.csv from the complete published tables of Ericsson, Gouk &
Hospedales (CVPR 2021; arXiv v2): Table 1 linear (with ImageNet) and fine-tune, Table 2 Kornblith
5-way 20-shot, Table 3 CD-FSL 5-way 20-shot, Table 8 CD-FSL 5- and 50-shot, with their CIs.

    python3 scripts/import_ericsson_reference.py ../shared/spec/reference/ericsson2021-tables.csv

Every value the previous file held must come out equal (the script checks it before writing).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "results" / "reference" / "ericsson2021.csv"
CITATION = "Ericsson, Gouk & Hospedales, How well do self-supervised models transfer? CVPR 2021"
MEAN_PER_CLASS = {"aircraft", "caltech101", "flowers102", "pets"}


def metric(protocol: str, dataset: str) -> str:
    if protocol == "fewshot":
        return "accuracy"
    if dataset == "avg11":
        return "mean"  # the paper's average over the 11 many-shot datasets
    return "voc_map" if dataset == "voc2007" else "mean_per_class" if dataset in MEAN_PER_CLASS else "top1"


def convert(tables: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame({
        "suite": "ericsson2021", "encoder": tables["model"], "dataset": tables["dataset"],
        "protocol": tables["protocol"], "metric": [metric(p, d) for p, d in zip(tables["protocol"], tables["dataset"])],
        "value": tables["value"], "ci95": tables["ci95"], "ways": tables["ways"].astype("Int64"),
        "shots": tables["shots"].astype("Int64"), "source": tables["table"], "citation": CITATION})
    return frame


def check_previous(frame: pd.DataFrame) -> None:
    if not OUT.exists():
        return
    previous = pd.read_csv(OUT)
    previous = previous.assign(shots=previous.get("shots", pd.Series(20, index=previous.index)).fillna(20))
    keys = ["encoder", "dataset", "protocol"]
    current = frame[(frame["protocol"] != "fewshot") | (frame["shots"] == 20)]
    joined = previous.merge(current, on=keys, suffixes=("_old", "_new"))
    if len(joined) != len(previous) or (joined["value_old"] - joined["value_new"]).abs().max() > 1e-9:
        sys.exit(f"the new table disagrees with {OUT} on {len(previous) - len(joined)} missing or changed cells")


def main() -> None:
    frame = convert(pd.read_csv(sys.argv[1]))
    check_previous(frame)
    frame.to_csv(OUT, index=False)
    print(f"wrote {OUT}: {len(frame)} published values")


if __name__ == "__main__":
    main()
