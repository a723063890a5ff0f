"""Miniatures of official dataset layouts, written in their exact on-disk format (a few tiny images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")


def voc_annotation(image_id: str, objects: list[tuple[str, bool]]) -> str:
    """A VOC2007 Annotations/<id>.xml with one <object> per (class, difficult)."""
    body = "".join(f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
                   f"<difficult>{int(difficult)}</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>8</xmax>"
                   f"<ymax>8</ymax></bndbox></object>" for name, difficult in objects)
    return (f"<annotation><folder>VOC2007</folder><filename>{image_id}.jpg</filename><size><width>16</width>"
            f"<height>12</height><depth>3</depth></size><segmented>0</segmented>{body}</annotation>\n")


def write_voc2007(root: Path, splits: dict[str, dict[str, list[tuple[str, bool]]]], seed: int = 0) -> Path:
    """VOCdevkit/VOC2007 as the VOCtrainval and VOCtest tars extract: JPEGImages, Annotations, and
    ImageSets/Main/{split}.txt plus <class>_{split}.txt with flags 1 (present), 0 (only difficult
    objects) and -1 (absent), right-aligned as in the official lists ("000005 -1", "000007  1")."""
    base = root / "VOCdevkit" / "VOC2007"
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, images in splits.items():
        for image_id, objects in images.items():
            Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).save(base / "JPEGImages" / f"{image_id}.jpg")
            (base / "Annotations" / f"{image_id}.xml").write_text(voc_annotation(image_id, objects))
        (base / "ImageSets/Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in images))
        for name in VOC_CLASSES:
            lines = "".join(f"{image_id} {voc_flag(name, objects):2d}\n" for image_id, objects in images.items())
            (base / "ImageSets/Main" / f"{name}_{split}.txt").write_text(lines)
    return root


def voc_flag(name: str, objects: list[tuple[str, bool]]) -> int:
    mine = [difficult for cls, difficult in objects if cls == name]
    return -1 if not mine else (0 if all(mine) else 1)


def write_image_folder(root: Path, splits: dict[str, dict[str, int]], size: int = 16, seed: int = 0) -> Path:
    """ROOT/<split>/<class>/<n>.png, each class a different brightness."""
    rng = np.random.default_rng(seed)
    for split, classes in splits.items():
        for index, (name, count) in enumerate(sorted(classes.items())):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for n in range(count):
                pixels = np.clip(rng.normal(40 + 50 * index, 10, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{n:03d}.png")
    return root


# --- The Ericsson 2021 suite: every dataset in the format its official archive extracts to ---------------

CALTECH101_SIZES = {  # images per class folder of 101_ObjectCategories (the official archive)
    "BACKGROUND_Google": 467, "Faces": 435, "Faces_easy": 435, "Leopards": 200, "Motorbikes": 798, "accordion": 55,
    "airplanes": 800, "anchor": 42, "ant": 42, "barrel": 47, "bass": 54, "beaver": 46, "binocular": 33,
    "bonsai": 128, "brain": 98, "brontosaurus": 43, "buddha": 85, "butterfly": 91, "camera": 50, "cannon": 43,
    "car_side": 123, "ceiling_fan": 47, "cellphone": 59, "chair": 62, "chandelier": 107, "cougar_body": 47,
    "cougar_face": 69, "crab": 73, "crayfish": 70, "crocodile": 50, "crocodile_head": 51, "cup": 57, "dalmatian": 67,
    "dollar_bill": 52, "dolphin": 65, "dragonfly": 68, "electric_guitar": 75, "elephant": 64, "emu": 53,
    "euphonium": 64, "ewer": 85, "ferry": 67, "flamingo": 67, "flamingo_head": 45, "garfield": 34, "gerenuk": 34,
    "gramophone": 51, "grand_piano": 99, "hawksbill": 100, "headphone": 42, "hedgehog": 54, "helicopter": 88,
    "ibis": 80, "inline_skate": 31, "joshua_tree": 64, "kangaroo": 86, "ketch": 114, "lamp": 61, "laptop": 81,
    "llama": 78, "lobster": 41, "lotus": 66, "mandolin": 43, "mayfly": 40, "menorah": 87, "metronome": 32,
    "minaret": 76, "nautilus": 55, "octopus": 35, "okapi": 39, "pagoda": 47, "panda": 38, "pigeon": 45, "pizza": 53,
    "platypus": 34, "pyramid": 57, "revolver": 82, "rhino": 59, "rooster": 49, "saxophone": 40, "schooner": 63,
    "scissors": 39, "scorpion": 84, "sea_horse": 57, "snoopy": 35, "soccer_ball": 64, "stapler": 45, "starfish": 86,
    "stegosaurus": 59, "stop_sign": 64, "strawberry": 35, "sunflower": 85, "tick": 49, "trilobite": 86,
    "umbrella": 75, "watch": 239, "water_lilly": 37, "wheelchair": 59, "wild_cat": 34, "windsor_chair": 56,
    "wrench": 39, "yin_yang": 60,
}


class Pixels:
    """Tiny images whose brightness says their class, so every protocol has something to learn."""

    def __init__(self, seed: int = 0, size: int = 8):
        self.rng, self.size = np.random.default_rng(seed), size

    def array(self, label: int, channels: int = 3) -> np.ndarray:
        shape = (self.size, self.size, channels) if channels > 1 else (self.size, self.size)
        return np.clip(self.rng.normal(30 + 40 * (label % 6), 12, shape), 0, 255).astype(np.uint8)

    def save(self, path: Path, label: int, mode: str = "RGB") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(self.array(label, 1 if mode == "L" else 3)).save(path)


def pickle_dump(path: Path, obj: dict) -> None:
    import pickle

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        pickle.dump(obj, file, protocol=2)  # the official batches are Python 2 pickles


def write_cifar(root: Path, hundred: bool, per_class: dict[str, int], classes: int = 5,
                px: Pixels | None = None) -> Path:
    """cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} or cifar-100-python/{train,test,meta}:
    dicts with `data` (N, 3072) uint8 rows (R plane, G plane, B plane) and `labels` / `fine_labels`."""
    px = px or Pixels()
    key = "fine_labels" if hundred else "labels"

    def batch(count: int, name: str) -> dict:
        labels = [c for c in range(classes) for _ in range(count)]
        data = np.stack([px.array(c, 3).transpose(2, 0, 1).reshape(-1) for c in labels])
        data = np.pad(data.reshape(len(labels), 3, 8, 8), ((0, 0), (0, 0), (0, 24), (0, 24)), mode="edge")
        return {"batch_label": name, key: labels, "data": data.reshape(len(labels), 3072),
                "filenames": [f"img_{i}.png" for i in range(len(labels))]}

    if hundred:
        base = root / "cifar-100-python"
        pickle_dump(base / "train", batch(per_class["train"], "training batch 1 of 1"))
        pickle_dump(base / "test", batch(per_class["test"], "testing batch 1 of 1"))
        pickle_dump(base / "meta", {"fine_label_names": [f"class{i}" for i in range(100)],
                                    "coarse_label_names": [f"super{i}" for i in range(20)]})
    else:
        base = root / "cifar-10-batches-py"
        for n in range(1, 6):  # the train images spread over five batches, as in the archive
            pickle_dump(base / f"data_batch_{n}", batch(1 if n > 1 else per_class["train"] - 4, f"training batch {n}"))
        pickle_dump(base / "test_batch", batch(per_class["test"], "testing batch 1 of 1"))
        names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        pickle_dump(base / "batches.meta", {"label_names": names, "num_cases_per_batch": 10000, "num_vis": 3072})
    return root


def write_aircraft(root: Path, per_class: dict[str, int], classes: int = 5, px: Pixels | None = None) -> Path:
    """fgvc-aircraft-2013b/data/{images/<id>.jpg, variants.txt, images_variant_<split>.txt ("<id> <variant>")}."""
    px, data = px or Pixels(), root / "fgvc-aircraft-2013b" / "data"
    variants = ["707-320", "727-200", "A300B4", "Boeing 717", "DC-10", "F/A-18"][:classes]
    data.mkdir(parents=True, exist_ok=True)
    (data / "variants.txt").write_text("".join(f"{v}\n" for v in variants))
    number = 1000000
    for split, count in per_class.items():
        lines = []
        for label, variant in enumerate(variants):
            for _ in range(count):
                number += 1
                px.save(data / "images" / f"{number:07d}.jpg", label)
                lines.append(f"{number:07d} {variant}\n")
        (data / f"images_variant_{split}.txt").write_text("".join(lines))
    return root


def write_cars(root: Path, per_class: dict[str, int], classes: int = 5, px: Pixels | None = None) -> Path:
    """stanford_cars/{cars_train,cars_test}/<00001>.jpg, devkit/{cars_meta.mat,cars_train_annos.mat} and
    cars_test_annos_withlabels.mat: MATLAB struct arrays `annotations` (bbox_x1..y2, class 1-based, fname)."""
    from scipy.io import savemat

    px, base = px or Pixels(), root / "stanford_cars"
    (base / "devkit").mkdir(parents=True, exist_ok=True)
    names = np.array([f"AM General Hummer SUV 200{i}" for i in range(196)], dtype=object)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": names.reshape(1, -1)})
    fields = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")]
    for split, count in per_class.items():
        records = []
        for label in range(classes):
            for _ in range(count):
                fname = f"{len(records) + 1:05d}.jpg"
                px.save(base / f"cars_{split}" / fname, label)
                records.append((1, 1, 7, 7, label + 1, fname))
        annotations = np.array(records, dtype=fields).reshape(1, -1)
        mat = base / "devkit" / "cars_train_annos.mat" if split == "train" else base / "cars_test_annos_withlabels.mat"
        savemat(mat, {"annotations": annotations})
    return root


def write_dtd(root: Path, per_class: dict[str, int], classes: int = 5, px: Pixels | None = None) -> Path:
    """dtd/{images/<class>/<class>_<n>.jpg, labels/{train,val,test}1.txt ("<class>/<file>")}, extracted into
    ROOT/dtd as torchvision expects (ROOT/dtd/dtd/...)."""
    px, data = px or Pixels(), root / "dtd" / "dtd"
    names = ["banded", "blotchy", "braided", "bubbly", "bumpy", "chequered"][:classes]
    (data / "labels").mkdir(parents=True, exist_ok=True)
    serial = 0
    for split, count in per_class.items():
        lines = []
        for label, name in enumerate(names):
            for _ in range(count):
                serial += 1
                px.save(data / "images" / name / f"{name}_{serial:04d}.jpg", label)
                lines.append(f"{name}/{name}_{serial:04d}.jpg\n")
        (data / "labels" / f"{split}1.txt").write_text("".join(lines))
    return root


def write_flowers102(root: Path, per_class: dict[str, int], classes: int = 5, px: Pixels | None = None) -> Path:
    """flowers-102/{jpg/image_NNNNN.jpg, imagelabels.mat (labels 1..102), setid.mat (trnid, valid, tstid)}."""
    from scipy.io import savemat

    px, base = px or Pixels(), root / "flowers-102"
    labels, ids = [], {"train": [], "val": [], "test": []}
    for split, count in per_class.items():
        for label in range(classes):
            for _ in range(count):
                labels.append(label + 1)
                ids[split].append(len(labels))
                px.save(base / "jpg" / f"image_{len(labels):05d}.jpg", label)
    savemat(base / "imagelabels.mat", {"labels": np.array(labels, dtype=np.uint8).reshape(1, -1)})
    savemat(base / "setid.mat", {key: np.array(ids[split], dtype=np.uint16).reshape(1, -1)
                                 for key, split in (("trnid", "train"), ("valid", "val"), ("tstid", "test"))})
    return root


def write_food101(root: Path, per_class: dict[str, int], classes: int = 5, px: Pixels | None = None) -> Path:
    """food-101/{images/<class>/<id>.jpg, meta/{train,test}.json ({class: ["class/id", ...]}), meta/classes.txt}."""
    import json

    px, base = px or Pixels(), root / "food-101"
    names = ["apple_pie", "baby_back_ribs", "baklava", "beef_carpaccio", "beef_tartare", "beet_salad"][:classes]
    (base / "meta").mkdir(parents=True, exist_ok=True)
    (base / "meta" / "classes.txt").write_text("".join(f"{n}\n" for n in names))
    serial = 100000
    for split, count in per_class.items():
        meta = {}
        for label, name in enumerate(names):
            meta[name] = []
            for _ in range(count):
                serial += 1
                px.save(base / "images" / name / f"{serial}.jpg", label)
                meta[name].append(f"{name}/{serial}")
        (base / "meta" / f"{split}.json").write_text(json.dumps(meta))
    return root


def write_pets(root: Path, per_class: dict[str, int], classes: int = 5, px: Pixels | None = None) -> Path:
    """oxford-iiit-pet/{images/<Breed>_<n>.jpg, annotations/{trainval,test}.txt}, lines
    "<id> <class> <species> <breed id>"."""
    px, base = px or Pixels(), root / "oxford-iiit-pet"
    breeds = [("Abyssinian", 1), ("american_bulldog", 2), ("american_pit_bull_terrier", 2), ("basset_hound", 2),
              ("Bengal", 1), ("beagle", 2)][:classes]
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    serial = 0
    for split, count in per_class.items():
        lines = []
        for label, (breed, species) in enumerate(breeds):
            for _ in range(count):
                serial += 1
                px.save(base / "images" / f"{breed}_{serial}.jpg", label)
                lines.append(f"{breed}_{serial} {label + 1} {species} {label + 1}\n")
        (base / "annotations" / f"{'trainval' if split == 'train' else split}.txt").write_text("".join(lines))
    return root


def write_sun397(root: Path, per_class: dict[str, int], px: Pixels | None = None) -> Path:
    """SUN397/{ClassName.txt ("/a/abbey"), <letter>/<class>/sun_<id>.jpg} and the Partitions archive's
    Training_01.txt / Testing_01.txt ("/a/abbey/sun_<id>.jpg"), here beside ClassName.txt. Includes
    two-level classes ("/c/church/indoor") as the real list has."""
    px, base = px or Pixels(), root / "SUN397"
    classes = ["/a/abbey", "/b/bakery/shop", "/c/castle", "/c/church/indoor", "/c/church/outdoor"]
    base.mkdir(parents=True, exist_ok=True)
    (base / "ClassName.txt").write_text("".join(f"{c}\n" for c in classes))
    serial = 0
    for split, count in per_class.items():
        lines = []
        for label, name in enumerate(sorted(c[3:] for c in classes)):
            letter = name[0]
            for _ in range(count):
                serial += 1
                px.save(base / letter / name / f"sun_a{serial:06d}.jpg", label)
                lines.append(f"/{letter}/{name}/sun_a{serial:06d}.jpg\n")
        (base / f"{'Training' if split == 'train' else 'Testing'}_01.txt").write_text("".join(lines))
    return root


def write_caltech101(root: Path, per_class: int, classes: int = 5, px: Pixels | None = None) -> Path:
    """101_ObjectCategories/<class>/image_NNNN.jpg (BACKGROUND_Google among the classes)."""
    px = px or Pixels()
    for label, name in enumerate(["BACKGROUND_Google", "Faces", "Leopards", "accordion", "airplanes"][:classes]):
        for n in range(1, per_class + 1):
            px.save(root / "101_ObjectCategories" / name / f"image_{n:04d}.jpg", label)
    return root


def write_class_folders(folder: Path, names: list[str], per_class: int, suffix: str, px: Pixels | None = None) -> None:
    px = px or Pixels()
    for label, name in enumerate(names):
        for n in range(per_class):
            px.save(folder / name / f"{name}_{n}{suffix}", label)


def write_cropdiseases(root: Path, per_class: int, classes: int = 5) -> Path:
    """dataset/train/<class>/<image>.JPG, as CD-FSL's PlantVillage archive extracts."""
    names = ["Apple___Apple_scab", "Apple___Black_rot", "Apple___Cedar_apple_rust", "Apple___healthy",
             "Blueberry___healthy", "Cherry___healthy"][:classes]
    write_class_folders(root / "dataset" / "train", names, per_class, ".JPG")
    return root


def write_eurosat(root: Path, per_class: int, classes: int = 5) -> Path:
    """2750/<class>/<class>_<n>.jpg, as EuroSAT.zip (RGB) extracts."""
    names = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture"][:classes]
    write_class_folders(root / "2750", names, per_class, ".jpg")
    return root


ISIC_COLUMNS = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")


def write_isic(root: Path, per_class: int, classes: int = 5, px: Pixels | None = None) -> Path:
    """ISIC2018_Task3_Training_Input/ISIC_NNNNNNN.jpg and ISIC2018_Task3_Training_GroundTruth/
    ISIC2018_Task3_Training_GroundTruth.csv: `image,MEL,NV,BCC,AKIEC,BKL,DF,VASC`, one-hot as 0.0 / 1.0."""
    px = px or Pixels()
    lines, serial = ["image," + ",".join(ISIC_COLUMNS)], 24305
    for label in range(classes):
        for _ in range(per_class):
            serial += 1
            px.save(root / "ISIC2018_Task3_Training_Input" / f"ISIC_{serial:07d}.jpg", label)
            lines.append(f"ISIC_{serial:07d}," + ",".join("1.0" if c == label else "0.0" for c in range(7)))
    csv = root / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    csv.write_text("\n".join(lines) + "\n")
    return root


CHESTX_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
                 "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")


CHESTX_FINDINGS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumothorax")


def write_chestx(root: Path, per_class: int, classes: int = 5, px: Pixels | None = None) -> Path:
    """images/NNNNNNNN_NNN.png (grey) and Data_Entry_2017.csv; besides single-label rows of the 7 classes,
    rows the reference drops: "No Finding", "Pneumonia" and multi-label findings ("Effusion|Mass")."""
    px = px or Pixels()
    findings = [name for name in CHESTX_FINDINGS[:classes] for _ in range(per_class)]
    findings += ["No Finding", "Pneumonia", "Effusion|Mass", "Cardiomegaly|Emphysema"]
    lines = [CHESTX_HEADER]
    for serial, finding in enumerate(findings):
        name = f"{serial:08d}_000.png"
        label = CHESTX_FINDINGS.index(finding) if finding in CHESTX_FINDINGS else 0
        px.save(root / "images" / name, label, mode="L")
        lines.append(f"{name},{finding},0,{serial},58,M,PA,2682,2749,0.143,0.143,")
    (root / "Data_Entry_2017.csv").write_text("\n".join(lines) + "\n")
    return root


def write_imagenet(root: Path, per_class: dict[str, int], classes: int = 5, px: Pixels | None = None) -> Path:
    """{train,val}/<wnid>/<wnid>_<n>.JPEG and meta.bin, as torchvision leaves ROOT after sorting the three
    official tars (meta.bin: torch.save of ({wnid: class names}, [val wnids in file order]))."""
    import torch

    px = px or Pixels()
    wnids = [f"n0144{n:04d}" for n in range(classes)]
    val_wnids = []
    for split, count in per_class.items():
        folder = "val" if split == "test" else split
        for label, wnid in enumerate(wnids):
            for n in range(count):
                px.save(root / folder / wnid / f"{wnid}_{n}.JPEG", label)
                val_wnids += [wnid] if folder == "val" else []
    torch.save(({w: (f"class {i}",) for i, w in enumerate(wnids)}, val_wnids), root / "meta.bin")
    return root


def write_imagenet_shifts(data_root: Path, classes: int = 14, train: int = 6, test: int = 3, shifted: int = 2) -> None:
    """ImageNet (torchvision's sorted layout, the first `classes` real WordNet ids, so folder order is the
    class index) and its four shifts in their published layouts: ImageNet-V2 (folders named by class index),
    Sketch, A and R (folders named by WordNet id; A and R only their own classes among the first `classes`).
    An image is its class's random 8 x 8 pattern plus noise, except ImageNet-A's classes 6 and 11, drawn
    mostly as classes 5 and 10 (0.6 of their pattern), which A does not have: only a prediction restricted to
    A's 200 classes gets them right."""
    import torch

    from benchmark.data.imagenet_shift import synsets

    rng, wnids = np.random.default_rng(0), synsets()[:classes]
    patterns = rng.uniform(30, 225, (classes, 8, 8, 3))

    def save(path: Path, k: int, mostly: int | None = None) -> None:
        pattern = patterns[k] if mostly is None else 0.6 * patterns[mostly] + 0.4 * patterns[k]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pattern + rng.normal(0, 4, pattern.shape), 0, 255).astype(np.uint8)).save(path)

    imagenet = data_root / "imagenet"
    for k, wnid in enumerate(wnids):
        for n in range(train):
            save(imagenet / "train" / wnid / f"{wnid}_{n}.JPEG", k)
        for n in range(test):
            save(imagenet / "val" / wnid / f"ILSVRC2012_val_{k * test + n:08d}.JPEG", k)
        for n in range(shifted):
            save(data_root / "imagenet_v2" / "imagenetv2-matched-frequency-format-val" / str(k) / f"{k:02d}{n}.jpeg", k)
            save(data_root / "imagenet_sketch" / "sketch" / wnid / f"sketch_{n}.JPEG", k)
            if wnid in synsets("imagenet_a"):
                save(data_root / "imagenet_a" / "imagenet-a" / wnid / f"{n}_a.jpg", k, {6: 5, 11: 10}.get(k))
            if wnid in synsets("imagenet_r"):
                save(data_root / "imagenet_r" / "imagenet-r" / wnid / f"art_{n}.jpg", k)
    torch.save(({w: (f"class {i}",) for i, w in enumerate(wnids)}, [w for w in wnids for _ in range(test)]),
               imagenet / "meta.bin")


def voc_images(first: int, count: int = 24) -> dict[str, list[tuple[str, bool]]]:
    """Images each showing two classes (every fifth one's second object difficult), so every class has
    positives and negatives in a split of 24."""
    return {f"{first + i:06d}": [(VOC_CLASSES[i % 20], False), (VOC_CLASSES[(i + 7) % 20], i % 5 == 0)]
            for i in range(count)}


def write_ericsson_suite(data_root: Path, shots: int = 20, queries: int = 1, pool_shots: int = 50) -> Path:
    """Every dataset of suites/ericsson2021.yaml under DATA_ROOT/<name>, 5 classes each, enough images per
    class (over all splits) for a 5-way `shots`-shot episode with `queries` queries, and `pool_shots` on the
    CD-FSL pools. VOC2007 gets 24 images per split with every class positive in each split."""
    per_image = shots + queries
    two = {"train": per_image - per_image // 3, "test": per_image // 3}
    three = {"train": per_image // 3, "val": per_image // 3, "test": per_image - 2 * (per_image // 3)}
    write_imagenet(data_root / "imagenet", {"train": 4, "test": 2})
    write_aircraft(data_root / "aircraft", three)
    write_caltech101(data_root / "caltech101", per_image + 30)  # 30 draws go to train, the rest to test
    write_cars(data_root / "cars", two)
    write_cifar(data_root / "cifar10", False, two)
    write_cifar(data_root / "cifar100", True, two)
    write_dtd(data_root / "dtd", three)
    write_flowers102(data_root / "flowers102", three)
    write_food101(data_root / "food101", two)
    write_pets(data_root / "pets", two)
    write_sun397(data_root / "sun397", two)
    write_voc2007(data_root / "voc2007", {"train": voc_images(0), "val": voc_images(100), "test": voc_images(200)})
    pool = pool_shots + queries
    write_cropdiseases(data_root / "cropdiseases", pool)
    write_eurosat(data_root / "eurosat", pool)
    write_isic(data_root / "isic", pool)
    write_chestx(data_root / "chestx", pool)
    return data_root


def write_revisitop(root: Path, name: str = "roxford5k", seed: int = 0) -> Path:
    """revisitop's layout: ROOT/jpg/*.jpg and ROOT/gnd_NAME.pkl. Three landmarks in three colours, four
    database images each (two easy, one hard, one junk for every query), three grey distractors, and one
    query image per landmark whose box crops its coloured part out of a grey frame."""
    rng = np.random.default_rng(seed)
    (root / "jpg").mkdir(parents=True, exist_ok=True)
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    imlist, gnd, queries = [], [], []

    def save(stem: str, colour: tuple[int, int, int], frame: bool = False) -> None:
        pixels = np.clip(np.array(colour) + rng.integers(-8, 9, (40, 48, 3)), 0, 255).astype(np.uint8)
        if frame:  # a grey border that the query box crops away
            pixels[:8], pixels[-8:], pixels[:, :8], pixels[:, -8:] = 128, 128, 128, 128
        Image.fromarray(pixels).save(root / "jpg" / f"{stem}.jpg", quality=95)

    for landmark, colour in enumerate(colours):
        indices = {}
        for role in ("easy1", "easy2", "hard", "junk"):
            indices[role] = len(imlist)
            imlist.append(f"{name}_{landmark}_{role}")
            save(imlist[-1], colour)
        queries.append(f"{name}_{landmark}_query")
        save(queries[-1], colour, frame=True)
        gnd.append({"bbx": [8.0, 8.0, 40.0, 32.0], "easy": [indices["easy1"], indices["easy2"]],
                    "hard": [indices["hard"]], "junk": [indices["junk"]]})
    for distractor in range(3):
        imlist.append(f"{name}_distractor_{distractor}")
        save(imlist[-1], (128, 128, 128))
    pickle_dump(root / f"gnd_{name}.pkl", {"imlist": imlist, "qimlist": queries, "gnd": gnd})
    return root


def write_karpathy(root: Path, dataset: str = "flickr30k", seed: int = 0) -> Path:
    """Karpathy's caption file and the images in the official layout: ROOT/dataset_flickr30k.json with
    ROOT/flickr30k-images/, or ROOT/dataset_coco.json with each entry's `filepath` folder (val2014, and
    train2014 for a train image). Three colours; the test images say in their captions which colour they
    are; one test image has six captions (COCO has such), a train and a val image must not be loaded."""
    import json

    rng = np.random.default_rng(seed)
    coco = dataset == "coco"
    colours = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}
    entries, sentence_id = [], 0
    plan = [("train", "red", 5), ("test", "red", 5), ("test", "green", 6), ("val", "blue", 5), ("test", "blue", 5),
            ("test", "green", 5)]
    for image_id, (split, colour, captions) in enumerate(plan):
        folder = ("train2014" if split == "train" else "val2014") if coco else "flickr30k-images"
        filename = f"COCO_{folder}_{image_id:012d}.jpg" if coco else f"{1000092795 + image_id}.jpg"
        (root / folder).mkdir(parents=True, exist_ok=True)
        pixels = np.clip(np.array(colours[colour]) + rng.integers(-8, 9, (32, 40, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / folder / filename, quality=95)
        sentences = [{"raw": f"A {colour} picture number {image_id} take {c}.", "tokens": [colour],
                      "imgid": image_id, "sentid": sentence_id + c} for c in range(captions)]
        entry = {"filename": filename, "imgid": image_id, "split": split, "sentences": sentences,
                 "sentids": [s["sentid"] for s in sentences]}
        if coco:
            entry |= {"filepath": folder, "cocoid": 391895 + image_id}
        entries.append(entry)
        sentence_id += captions
    name = "dataset_coco.json" if coco else "dataset_flickr30k.json"
    (root / name).write_text(json.dumps({"images": entries, "dataset": "coco" if coco else "flickr30k"}))
    return root


def write_vtab_task(root: Path, counts: dict[str, int], classes: int = 2, px: Pixels | None = None) -> Path:
    """One VTAB-1k task folder as VPT / NOAH distribute it: images/<n>.jpg and train800.txt, val200.txt,
    train800val200.txt (the two concatenated) and test.txt, each line `images/<n>.jpg <label>`; labels
    cycle over `classes` (the official folders hold 800 / 200 / the task's test images)."""
    px, lines, n = px or Pixels(), {}, 0
    for split in ("train", "val", "test"):
        lines[split] = []
        for i in range(counts[split]):
            label = i % classes
            px.save(root / "images" / f"{n:06d}.jpg", label)
            lines[split].append(f"images/{n:06d}.jpg {label}")
            n += 1
    for split, file in (("train", "train800.txt"), ("val", "val200.txt"), ("test", "test.txt")):
        (root / file).write_text("\n".join(lines[split]) + "\n")
    (root / "train800val200.txt").write_text("\n".join(lines["train"] + lines["val"]) + "\n")
    return root
