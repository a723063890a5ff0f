"""Published reference tables (results/reference/NAME.csv), in the same long format as our results
plus `ci95`, `source` and `citation` columns, and the comparison of our numbers with them."""

from __future__ import annotations

from collections.abc import Iterable
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


def setting(protocol: str, ways: object, shots: object) -> str:
    """What tells apart cells of one protocol on one dataset: the few-shot episode shape ("5-way 20-shot")."""
    if protocol != "fewshot" or pd.isna(ways) or pd.isna(shots):
        return ""
    return f"{int(ways)}-way {int(shots)}-shot"


def with_settings(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with a `setting` column: from `ways`/`shots` columns (published tables) or from the chosen
    parameters our few-shot rows record."""
    if "ways" in frame.columns:
        ways, shots = frame["ways"], frame["shots"]
    else:
        chosen = frame["chosen"] if "chosen" in frame.columns else pd.Series([{}] * len(frame), index=frame.index)
        ways, shots = chosen.map(lambda c: c.get("ways")), chosen.map(lambda c: c.get("shots"))
    return frame.assign(setting=[setting(p, w, s) for p, w, s in zip(frame["protocol"], ways, shots)])


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose protocol names its setting ("fewshot 5-way 50-shot"), so a table keeps them apart."""
    frame = with_settings(frame)
    return frame.assign(protocol=[f"{p} {s}".strip() for p, s in zip(frame["protocol"], frame["setting"])])


# Published columns that average others (Ericsson et al.'s Table 1 "Avg" over the 11 many-shot datasets).
AVERAGES = {"avg11": ("aircraft", "caltech101", "cars", "cifar10", "cifar100", "dtd", "flowers102", "food101", "pets",
                      "sun397", "voc2007")}


def with_averages(ours: pd.DataFrame) -> pd.DataFrame:
    """Our rows plus, per (encoder, protocol), each published average column whose datasets we all have."""
    extra = []
    for name, datasets in AVERAGES.items():
        for (encoder, protocol), group in ours[ours["dataset"].isin(datasets)].groupby(["encoder", "protocol"]):
            if set(group["dataset"]) == set(datasets):
                extra.append({"encoder": encoder, "protocol": protocol, "dataset": name, "metric": "mean",
                              "value": group.drop_duplicates("dataset", keep="last")["value"].mean(), "chosen": {}})
    return pd.concat([ours, pd.DataFrame(extra)], ignore_index=True) if extra else ours


def by_registered_protocol(ours: pd.DataFrame, published: Iterable[str] = ()) -> pd.DataFrame:
    """Our rows with `protocol` naming the registered protocol ("fewshot") rather than the suite's column
    ("fewshot_50shot"), as published tables name them; the setting then tells the columns apart. A column
    named as the published table names one (`linear`) keeps its name, whatever protocol filled the cell:
    the Ericsson suite's ImageNet cell of its `linear` column is run by linear_sgd."""
    if "protocol_kind" not in ours.columns:
        return ours
    kinds = ours["protocol_kind"].fillna("")
    keep = (kinds == "") | ours["protocol"].isin(set(published))
    return ours.assign(protocol=ours["protocol"].where(keep, kinds))


def value_notes(reference: pd.DataFrame) -> list[str]:
    """One line per published value that carries a note (where it comes from, when not from the paper's
    own protocol): "MoCo-v1 / imagenet / linear 60.60: ..."."""
    if "note" not in reference.columns:
        return []
    noted = reference.dropna(subset=["note"])
    return [f"{r.encoder} / {r.dataset} / {r.protocol} {r.value:.2f}: {r.note}" for r in noted.itertuples()]


def compare(ours: pd.DataFrame, reference: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """Our cells next to the published ones: one row per (reference encoder, protocol, setting, dataset)
    that we also measured. `names` maps our encoder labels to the reference's encoder names."""
    keys = ["encoder", "protocol", "setting", "dataset"]
    ours = with_averages(by_registered_protocol(ours, reference["protocol"]))
    mine = with_settings(ours.assign(encoder=ours["encoder"].map(names))).dropna(subset=["encoder"])
    joined = with_settings(reference)[[*keys, "value"]].merge(mine[[*keys, "value"]], on=keys,
                                                                suffixes=("_published", "_ours"))
    return joined.rename(columns={"value_published": "published", "value_ours": "ours"}).assign(
        difference=lambda f: f["ours"] - f["published"])
