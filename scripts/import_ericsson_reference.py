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


# Table 1's ImageNet column is not the paper's L-BFGS probe: each value is an SSL paper's or repository's own
# linear evaluation (SGD, about 100 epochs, augmented). Where each comes from, as checked in the public
# sources available to us (2026-12-06); "not checked here" marks a source we could not read.
PYCONTRAST = "PyContrast's README (HobbitLong/PyContrast), ImageNet linear readout of its reimplementation"
IMAGENET_SOURCES = {
    "InsDis": f"{PYCONTRAST}, InstDis 200 epochs; its InsDis.pth is the checkpoint the paper evaluates",
    "MoCo-v1": "facebookresearch/moco README, model table: the released moco_v1_200ep checkpoint "
               "(its 5-run mean is 60.8 +- 0.2)",
    "PCL-v1": "the PCL paper (Li et al., ICLR 2021), 200 epochs; not checked here",
    "PIRL": f"{PYCONTRAST}, PIRL 200 epochs (not the PIRL paper's own model); its PIRL.pth is the one evaluated",
    "PCL-v2": "the PCL paper (Li et al., ICLR 2021), PCL with MoCo-v2's improvements, 200 epochs; not checked here",
    "SimCLR-v1": "the SimCLR paper (Chen et al., ICML 2020), ResNet-50 (1x); not checked here",
    "MoCo-v2": "facebookresearch/moco README, model table: the released moco_v2_800ep checkpoint",
    "SimCLR-v2": "SimCLR-v2's r50_1x_sk0 TensorFlow checkpoint; the PyTorch conversion the paper uses "
                 "(Separius/SimCLRv2-Pytorch) measures 70.97",
    "SeLa-v2": "facebookresearch/swav README, model table: SeLa-v2 400 epochs, 2x160 + 4x96 multi-crop",
    "InfoMin": f"{PYCONTRAST}, InfoMin 800 epochs (InfoMin_800.pth)",
    "BYOL": "the BYOL paper (Grill et al., NeurIPS 2020), ResNet-50 (1x); not checked here (the byol-convert "
            "README lists the released pretrain_res50x1 at 74.4)",
    "DeepCluster-v2": "facebookresearch/swav README, model table: DeepCluster-v2 800 epochs",
    "SwAV": "facebookresearch/swav README, model table: SwAV 800 epochs",
    "Supervised": "source not found; the checkpoint the paper evaluates, torchvision's resnet50(pretrained=True) "
                  "(IMAGENET1K_V1), is documented at 76.13 top-1",
}


def note(model: str, protocol: str, dataset: str) -> str | None:
    return IMAGENET_SOURCES.get(model) if (protocol, dataset) == ("linear", "imagenet") else None


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
        "shots": tables["shots"].astype("Int64"), "source": tables["table"], "citation": CITATION,
        "note": [note(m, p, d) for m, p, d in zip(tables["model"], tables["protocol"], tables["dataset"])]})
    return frame


def check_previous(frame: pd.DataFrame) -> None:
    """Every value of the file being replaced must come out equal, cell by cell (few-shot cells by shots)."""
    if not OUT.exists():
        return
    keyed = lambda f: f.assign(shots=f["shots"].astype("Float64").fillna(0))  # noqa: E731
    keys = ["encoder", "dataset", "protocol", "shots"]
    joined = keyed(pd.read_csv(OUT)).merge(keyed(frame), on=keys, suffixes=("_old", "_new"))
    previous = len(pd.read_csv(OUT))
    if len(joined) != previous or (joined["value_old"] - joined["value_new"]).abs().max() > 1e-9:
        sys.exit(f"the new table disagrees with {OUT} on {previous - len(joined)} missing or changed cells")


def main() -> None:
    frame = convert(pd.read_csv(sys.argv[1]))
    check_previous(frame)
    frame.to_csv(OUT, index=False)
    print(f"wrote {OUT}: {len(frame)} published values")


if __name__ == "__main__":
    main()
