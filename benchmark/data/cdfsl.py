"""The four CD-FSL few-shot pools of the Ericsson suite, read from their official downloads as the
reference reads them (ssl-transfer `datasets/{cropdiseases,eurosat,isic,chestx}.py`). Each is one pool
(split "train") from which few-shot episodes are drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data import register_dataset
from benchmark.data.base import DatasetSpec, ImageSplit, ResizedFiles
from benchmark.data.image_folder import imagefolder_split
from benchmark.data.recipe import Archive, Recipe, Unpack
from benchmark.errors import MissingDataError

POOL = ("train",)

CROPDISEASES_LAYOUT = "ROOT/dataset/train/<class>/<image> (CD-FSL's PlantVillage, 38 class folders)"
EUROSAT_LAYOUT = "ROOT/2750/<class>/<image>.jpg (the RGB EuroSAT archive; ROOT/eurosat/2750 also works)"
ISIC_IMAGES = "ISIC2018_Task3_Training_Input"
ISIC_CSV = "ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv"
ISIC_LAYOUT = f"ROOT/{ISIC_IMAGES}/<id>.jpg and ROOT/{ISIC_CSV}"
CHESTX_LAYOUT = "ROOT/images/<name>.png and ROOT/Data_Entry_2017.csv"
# CD-FSL's 7 ChestX-ray14 classes, in its label order (Pneumonia and "No Finding" are dropped).
CHESTX_CLASSES = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumothorax")
CHESTX_SIZE = (256, 256)  # the reference resizes every X-ray to this when it opens it


def load_cropdiseases(split: str, root: Path | None) -> ImageSplit:
    return imagefolder_split(Path(root or "") / "dataset" / "train", CROPDISEASES_LAYOUT)


def load_eurosat(split: str, root: Path | None) -> ImageSplit:
    base = Path(root or "")
    folder = next((p for p in (base / "2750", base / "eurosat" / "2750") if p.is_dir()), base / "2750")
    return imagefolder_split(folder, EUROSAT_LAYOUT)


def read_csv(path: Path, layout: str) -> pd.DataFrame:
    if not path.is_file():
        raise MissingDataError(f"{path} not found. Expected layout: {layout}.")
    return pd.read_csv(path)


def load_isic(split: str, root: Path | None) -> ImageSplit:
    """Label = the first of the 7 diagnosis columns that is non-zero (the reference's argmax of != 0)."""
    table = read_csv(Path(root or "") / ISIC_CSV, ISIC_LAYOUT)
    labels = (table.iloc[:, 1:].to_numpy() != 0).argmax(axis=1).astype(np.int64)
    return ImageSplit([Path(root or "") / ISIC_IMAGES / f"{name}.jpg" for name in table.iloc[:, 0]], labels)


def load_chestx(split: str, root: Path | None) -> ImageSplit:
    """Images whose "Finding Labels" is exactly one of the 7 classes, in the CSV's order."""
    table = read_csv(Path(root or "") / "Data_Entry_2017.csv", CHESTX_LAYOUT)
    findings = table.iloc[:, 1].astype(str)
    kept = findings.isin(CHESTX_CLASSES).to_numpy()
    labels = np.asarray([CHESTX_CLASSES.index(f) for f in findings[kept]], dtype=np.int64)
    paths = tuple(Path(root or "") / "images" / name for name in table.iloc[:, 0][kept])
    return ImageSplit(ResizedFiles(paths, CHESTX_SIZE), labels)


register_dataset(DatasetSpec(
    name="cropdiseases", num_classes=38, load=load_cropdiseases, splits=POOL, needs_root=True,
    layout=CROPDISEASES_LAYOUT, official_sizes={"train": 43456},
    download="the Kaggle dataset saroz014/plant-disease (CD-FSL's link); extract so that ROOT/dataset/train exists",
    fetch=Recipe((Archive("plant-disease.zip"),), page="https://www.kaggle.com/datasets/saroz014/plant-disease",
                 manual="CropDiseases is CD-FSL's copy of PlantVillage on Kaggle, which needs a Kaggle account: "
                        "`kaggle datasets download -d saroz014/plant-disease` (or the page's Download button) gives "
                        "plant-disease.zip. No checksum is published: check-data's image count checks it."),
    description="CropDiseases (PlantVillage), one few-shot pool"))
register_dataset(DatasetSpec(
    name="eurosat", num_classes=10, load=load_eurosat, splits=POOL, needs_root=True, layout=EUROSAT_LAYOUT,
    official_sizes={"train": 27000}, version=2,
    download="EuroSAT.zip (RGB) from madm.dfki.de/files/sentinel; it extracts to ROOT/2750",
    fetch=Recipe((Archive("EuroSAT.zip", "https://huggingface.co/datasets/torchgeo/eurosat/resolve/"
                                         "c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",
                          md5="c8fa014336c82ac7804f0398fcb19387",
                          source="torchvision's URL and md5 (torchgeo's copy; the original host is often down)"),),
                 page="https://github.com/phelber/EuroSAT"),
    description="EuroSAT RGB, one few-shot pool"))
register_dataset(DatasetSpec(
    name="isic", num_classes=7, load=load_isic, splits=POOL, needs_root=True, layout=ISIC_LAYOUT,
    official_sizes={"train": 10015},
    download="ISIC2018_Task3_Training_Input.zip and ISIC2018_Task3_Training_GroundTruth.zip from "
             "challenge.isic-archive.com/data (2018 Task 3); extract both into ROOT",
    fetch=Recipe((Archive("ISIC2018_Task3_Training_Input.zip"), Archive("ISIC2018_Task3_Training_GroundTruth.zip")),
                 page="https://challenge.isic-archive.com/data/#2018",
                 manual="ISIC 2018's data are released under the challenge's terms (CC BY-NC), accepted on its page: "
                        "download Task 3's Training Data and Training Ground Truth. No checksum is published: "
                        "check-data's image count checks them."),
    description="ISIC 2018 Task 3 skin lesions, one few-shot pool"))
register_dataset(DatasetSpec(
    name="chestx", num_classes=7, load=load_chestx, splits=POOL, needs_root=True, layout=CHESTX_LAYOUT,
    official_sizes={"train": 25848}, class_names=CHESTX_CLASSES,
    download="NIH ChestX-ray14 (nihcc.app.box.com/v/ChestXray-NIHCC, or Kaggle nih-chest-xrays/data): "
             "images_001.tar.gz to images_012.tar.gz extracted into ROOT/images, and Data_Entry_2017.csv in ROOT",
    fetch=Recipe((*(Archive(f"images_{part:03d}.tar.gz") for part in range(1, 13)),
                  Archive("Data_Entry_2017.csv", unpack=Unpack.PLACE)),
                 page="https://nihcc.app.box.com/v/ChestXray-NIHCC",
                 manual="ChestX-ray14 is distributed by the NIH Clinical Center through a Box folder, whose terms "
                        "ask users to cite and acknowledge the NIH: download its 12 image archives (images/) and the "
                        "label table CD-FSL reads, Data_Entry_2017.csv. No checksum is published: check-data's "
                        "image count checks them."),
    description="ChestX-ray14, CD-FSL's 7 single-label classes, one few-shot pool"))
