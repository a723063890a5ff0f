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
