"""ImageNet's natural distribution shifts: test sets for heads fitted on ImageNet (Taori et al. 2020,
"Measuring robustness to natural distribution shifts in image classification"; CLIP's Figure 13).

- `imagenet_v2`: ImageNet-V2 MatchedFrequency (Recht et al. 2019), 10,000 images, 10 per class, in
  class folders named by ImageNet index (`0` .. `999`).
- `imagenet_sketch`: ImageNet-Sketch (Wang et al. 2019), 50,889 drawings, folders named by WordNet id.
- `imagenet_a`: ImageNet-A (Hendrycks et al. 2021), 7,500 adversarially filtered photos of 200 classes.
- `imagenet_r`: ImageNet-R (Hendrycks et al. 2021), 30,000 renditions of 200 classes.

Each has only a test split: its `train_from` names the dataset whose train split fits the head
(`imagenet`), and its labels are ImageNet's class indices (torchvision's: the sorted WordNet ids). A and R
cover 200 classes; as in their authors' evaluation code, predictions are restricted to those 200
(`class_subset`, from timm's copy of the official lists).
"""

from __future__ import annotations

import functools
import pkgutil
from pathlib import Path


from benchmark.data import register_dataset
from benchmark.data.base import DatasetSpec, ImageSplit
from benchmark.data.image_folder import files_by_class
from benchmark.data.recipe import Archive, Recipe
from benchmark.errors import MissingDataError, UserError
from benchmark.groups import SHIFT_SOURCE
from benchmark.vocab import Metric

TFDS = "TensorFlow Datasets' url_checksums"
HENDRYCKS = "https://people.eecs.berkeley.edu/~hendrycks"


@functools.cache
def synsets(name: str = "imagenet") -> tuple[str, ...]:
    """WordNet ids from timm's packaged lists: `imagenet` (all 1000, sorted: position = class index),
    `imagenet_a` or `imagenet_r` (their 200)."""
    data = pkgutil.get_data("timm.data", f"_info/{name}_synsets.txt")
    if data is None:
        raise UserError(f"timm's list {name}_synsets.txt is missing; reinstall timm (pip install -U timm)")
    return tuple(data.decode().split())


@functools.cache
def imagenet_class_names() -> tuple[str, ...]:
    """ImageNet's 1000 class names as CLIP's zero-shot evaluation words them (open_clip's copy)."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    return tuple(IMAGENET_CLASSNAMES)


def class_index(wnid: str) -> int:
    return imagenet_index()[wnid]


@functools.cache
def imagenet_index() -> dict[str, int]:
    return {wnid: i for i, wnid in enumerate(synsets())}


def subset_indices(name: str) -> tuple[int, ...]:
    """The ImageNet class indices a 200-class shift covers, ascending."""
    return tuple(sorted(class_index(wnid) for wnid in synsets(name)))


def wnid_folders(folder: str, allowed: tuple[str, ...]):
    """A loader for ROOT/<folder>/<wnid>/<image>: labels are the wnids' ImageNet indices."""
    def load(split: str, root: Path | None) -> ImageSplit:
        directory = existing(root, folder)
        classes = sorted(p.name for p in directory.iterdir() if p.is_dir())
        unknown = sorted(set(classes) - set(allowed))
        if unknown:
            raise UserError(f"{directory} has class folders that are not among its {len(allowed)} ImageNet classes: "
                            f"{', '.join(unknown[:5])}; only WordNet ids such as {allowed[0]} belong there")
        return labelled_files(directory, classes, [class_index(wnid) for wnid in classes])
    return load


def index_folders(folder: str):
    """A loader for ROOT/<folder>/<class index>/<image> (ImageNet-V2's layout)."""
    def load(split: str, root: Path | None) -> ImageSplit:
        directory = existing(root, folder)
        classes = sorted((p.name for p in directory.iterdir() if p.is_dir()), key=lambda name: (len(name), name))
        wrong = [name for name in classes if not name.isdigit() or not 0 <= int(name) < 1000]
        if wrong:
            raise UserError(f"{directory} has folders {', '.join(wrong[:5])}; ImageNet-V2's are class indices 0..999")
        return labelled_files(directory, classes, [int(name) for name in classes])
    return load


def existing(root: Path | None, folder: str) -> Path:
    directory = (root / folder) if root is not None else None
    if directory is None or not directory.is_dir():
        raise MissingDataError(f"{directory or folder} is missing; expected its class folders there")
    return directory


def labelled_files(directory: Path, classes: list[str], labels: list[int]) -> ImageSplit:
    split = files_by_class(directory, classes, labels)
    if not len(split):
        raise MissingDataError(f"{directory} holds no images in its class folders")
    return split


def shift(name: str, load, layout: str, size: int, description: str, download: str = "",
          fetch: Recipe | None = None, class_subset: tuple[int, ...] = ()) -> DatasetSpec:
    return register_dataset(DatasetSpec(
        name=name, num_classes=1000, load=load, metric=Metric.TOP1, splits=("test",), needs_root=True,
        layout=layout, description=description, official_sizes={"test": size}, download=download, fetch=fetch,
        train_from=SHIFT_SOURCE, class_subset=class_subset, class_names_from=imagenet_class_names))


shift("imagenet_v2", index_folders("imagenetv2-matched-frequency-format-val"),
      "ROOT/imagenetv2-matched-frequency-format-val/<class index 0..999>/<hash>.jpeg", 10000,
      "ImageNet-V2 MatchedFrequency (heads fitted on imagenet)",
      "imagenetv2-matched-frequency.tar.gz from github.com/modestyachts/ImageNetV2, extracted into ROOT",
      Recipe((Archive("imagenetv2-matched-frequency.tar.gz",
                      "https://s3-us-west-2.amazonaws.com/imagenetv2public/imagenetv2-matched-frequency.tar.gz",
                      1253959680, sha256="a32004f9e773279307499059d320336a23ccdc62cb32063da29bae9bd04c122c",
                      source=TFDS),), page="https://github.com/modestyachts/ImageNetV2"))
shift("imagenet_sketch", wnid_folders("sketch", synsets()), "ROOT/sketch/<wnid>/<n>.JPEG", 50889,
      "ImageNet-Sketch (heads fitted on imagenet)",
      "ImageNet-Sketch.zip (github.com/HaohanWang/ImageNet-Sketch: Google Drive or Kaggle), extracted into ROOT "
      "(giving ROOT/sketch/<wnid>)")
def hendrycks(name: str, folder: str, size: int, archive_bytes: int, sha256: str, page: str) -> DatasetSpec:
    """ImageNet-A or -R: a tar of `folder`/<wnid>/ from Hendrycks' page, scored over its 200 classes."""
    return shift(name, wnid_folders(folder, synsets(name)), f"ROOT/{folder}/<wnid>/<name>.jpg", size,
                 f"ImageNet-{folder[-1].upper()}, scored over its 200 classes (heads fitted on imagenet)",
                 f"{HENDRYCKS}/{folder}.tar, extracted into ROOT",
                 Recipe((Archive(f"{folder}.tar", f"{HENDRYCKS}/{folder}.tar", archive_bytes, sha256=sha256,
                                 source=TFDS),), page=page),
                 subset_indices(name))


hendrycks("imagenet_a", "imagenet-a", 7500, 687552512,
          "3bb3632277e6ba6392ea64c02ddbf4dd2266c9caffd6bc09c9656d28f012589e",
          "https://github.com/hendrycks/natural-adv-examples")
hendrycks("imagenet_r", "imagenet-r", 30000, 2191079936,
          "18c6bf493b39a0d975d48e587437f562caab9c52ae6327dcfa9dd8eb54aa1b52", "https://github.com/hendrycks/imagenet-r")
