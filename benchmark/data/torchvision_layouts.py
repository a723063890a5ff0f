"""Datasets stored in torchvision's own on-disk layouts under a user's root (never downloaded).

Each entry is one row of `LAYOUTS`: the torchvision class, how it names splits, and the spec fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data import register_dataset, safe_pickle
from benchmark.data.base import DatasetSpec, ImageSplit
from benchmark.data.imagenet_shift import imagenet_class_names
from benchmark.data.recipe import Archive, Recipe, Unpack
from benchmark.errors import MissingDataError
from benchmark.vocab import Metric

# name: (torchvision class, split argument style, num_classes, metric, splits, layout)
LAYOUTS: dict[str, tuple[str, str, int, str, tuple[str, ...], str]] = {
    "cifar10": ("CIFAR10", "train_flag", 10, Metric.TOP1, ("train", "test"),
                "ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}"),
    "cifar100": ("CIFAR100", "train_flag", 100, Metric.TOP1, ("train", "test"),
                 "ROOT/cifar-100-python/{train,test,meta}"),
    "mnist": ("MNIST", "train_flag", 10, Metric.TOP1, ("train", "test"), "ROOT/MNIST/raw/*-ubyte[.gz]"),
    "svhn": ("SVHN", "split_arg", 10, Metric.TOP1, ("train", "test"), "ROOT/{train,test}_32x32.mat"),
    "stl10": ("STL10", "split_arg", 10, Metric.TOP1, ("train", "test"), "ROOT/stl10_binary/*.bin"),
    "dtd": ("DTD", "split_arg", 47, Metric.TOP1, ("train", "val", "test"), "ROOT/dtd/dtd/{images,labels}"),
    "flowers102": ("Flowers102", "split_arg", 102, Metric.MEAN_PER_CLASS, ("train", "val", "test"),
                   "ROOT/flowers-102/{jpg,imagelabels.mat,setid.mat}"),
    "pets": ("OxfordIIITPet", "pets", 37, Metric.MEAN_PER_CLASS, ("train", "test"),
             "ROOT/oxford-iiit-pet/{images,annotations}"),
    "food101": ("Food101", "split_arg", 101, Metric.TOP1, ("train", "test"), "ROOT/food-101/{images,meta}"),
    "aircraft": ("FGVCAircraft", "split_arg", 100, Metric.MEAN_PER_CLASS, ("train", "val", "test"),
                 "ROOT/fgvc-aircraft-2013b/data/{images,images_variant_*.txt}"),
    "cars": ("StanfordCars", "split_arg", 196, Metric.TOP1, ("train", "test"),
             "ROOT/stanford_cars/{cars_train,cars_test,devkit,cars_test_annos_withlabels.mat}"),
    # ImageNet's official val set is the test split, as in Ericsson et al.'s ImageNet column
    "imagenet": ("ImageNet", "imagenet", 1000, Metric.TOP1, ("train", "test"),
                 "ROOT/{train/<wnid>/*.JPEG, val/<wnid>/*.JPEG, meta.bin} or the three official tars in ROOT"),
}
# The official archives and where they go (check-data prints this for a missing or short dataset).
DOWNLOADS: dict[str, str] = {
    "cifar10": "cifar-10-python.tar.gz from cs.toronto.edu/~kriz/cifar.html, extracted into ROOT",
    "cifar100": "cifar-100-python.tar.gz from cs.toronto.edu/~kriz/cifar.html, extracted into ROOT",
    "mnist": "the four *-ubyte.gz files from yann.lecun.com/exdb/mnist into ROOT/MNIST/raw",
    "svhn": "train_32x32.mat and test_32x32.mat from ufldl.stanford.edu/housenumbers into ROOT",
    "stl10": "stl10_binary.tar.gz from cs.stanford.edu/~acoates/stl10, extracted into ROOT",
    "dtd": "dtd-r1.0.1.tar.gz from robots.ox.ac.uk/~vgg/data/dtd, extracted into ROOT/dtd (giving ROOT/dtd/dtd/images)",
    "flowers102": "102flowers.tgz, imagelabels.mat and setid.mat from robots.ox.ac.uk/~vgg/data/flowers/102 into "
                  "ROOT/flowers-102 (the tgz extracted there)",
    "pets": "images.tar.gz and annotations.tar.gz from robots.ox.ac.uk/~vgg/data/pets, extracted into "
            "ROOT/oxford-iiit-pet",
    "food101": "food-101.tar.gz from data.vision.ee.ethz.ch/cvl/datasets_extra/food-101, extracted into ROOT",
    "aircraft": "fgvc-aircraft-2013b.tar.gz from robots.ox.ac.uk/~vgg/data/fgvc-aircraft, extracted into ROOT",
    "cars": "the Stanford Cars train/test images and devkit (car_devkit.tgz, cars_test_annos_withlabels.mat; the "
            "original site is gone, mirrors on Kaggle) into ROOT/stanford_cars",
    "imagenet": "ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar and ILSVRC2012_devkit_t12.tar.gz from "
                "image-net.org into ROOT (torchvision sorts them into class folders on first use)",
}
TV, TFDS = "torchvision's md5", "TensorFlow Datasets' url_checksums"
VGG = "https://www.robots.ox.ac.uk/~vgg/data"
# How `data fetch` makes each layout from the official files (benchmark.data.recipe).
RECIPES: dict[str, Recipe] = {
    "cifar10": Recipe((Archive("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                               170498071, md5="c58f30108f718f92721af3b95e74349a", source=TV),),
                      page="https://www.cs.toronto.edu/~kriz/cifar.html"),
    "cifar100": Recipe((Archive("cifar-100-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                                169001437, md5="eb9058c3a382ffc7106e4002c42a8d85", source=TV),),
                       page="https://www.cs.toronto.edu/~kriz/cifar.html"),
    "dtd": Recipe((Archive("dtd-r1.0.1.tar.gz", f"{VGG}/dtd/download/dtd-r1.0.1.tar.gz", 625239812,
                           md5="fff73e5086ae6bdbea199a49dfb8a4c1",
                           sha256="e42855a52a4950a3b59612834602aa253914755c95b0cff9ead6d07395f8e205",
                           source=f"{TV}; {TFDS}", into="dtd"),), page=f"{VGG}/dtd"),
    "flowers102": Recipe(tuple(
        Archive(file, f"{VGG}/flowers/102/{file}", size, md5=md5, sha256=sha, source=f"{TV}; {TFDS}",
                into="flowers-102", unpack=Unpack.EXTRACT if file.endswith(".tgz") else Unpack.PLACE)
        for file, size, md5, sha in (
            ("102flowers.tgz", 344862509, "52808999861908f626f3c1f4e79d11fa",
             "2d01ecc807db462958cfe3d92f57a8c252b4abd240eb955770201e45f783b246"),
            ("imagelabels.mat", 502, "e0620be6f572b9609742df49c70aed4d",
             "4903e94206bac23bf772aadf06451916df56b58fc483a62db32a97b82656651d"),
            ("setid.mat", 14989, "a5357ecc9cb78c4bef273ce3793fc85c",
             "46b8678f91fd95d3c8f4feab80d271a6c834a1dd896fe29fd3e6ad9ce5c8dccd"))), page=f"{VGG}/flowers/102"),
    "pets": Recipe(tuple(
        Archive(file, f"{VGG}/pets/data/{file}", size, md5=md5, sha256=sha, source=f"{TV}; {TFDS}",
                into="oxford-iiit-pet")
        for file, size, md5, sha in (
            ("images.tar.gz", 791918971, "5c4f3ee8e5d25df40f4fd59a7f44e54c",
             "67195c5e1c01f1ab5f9b6a5d22b8c27a580d896ece458917e61d459337fa318d"),
            ("annotations.tar.gz", 19173078, "95a8c909bbe2e81eed6a22bccdf3f68f",
             "52425fb6de5c424942b7626b428656fcbd798db970a937df61750c0f1d358e91"))), page=f"{VGG}/pets"),
    "food101": Recipe((Archive("food-101.tar.gz", "http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz", 4996278331,
                               md5="85eeb15f3717b99a5da872d97d918f87",
                               sha256="d97d15e438b7f4498f96086a4f7e2fa42a32f2712e87d3295441b2b6314053a4",
                               source=f"{TV}; {TFDS}"),),
                      page="https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/"),
    "aircraft": Recipe((Archive("fgvc-aircraft-2013b.tar.gz", f"{VGG}/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz",
                                2770575360, sha256="d5f68b1b81d6d7831eb9d5c5517074176b5dfbce6bcb43dc14ed1c66a87b8d75",
                                source=TFDS),), page=f"{VGG}/fgvc-aircraft"),
    "cars": Recipe(tuple(
        Archive(file, size=size, sha256=sha, source=TFDS, into="stanford_cars",
                unpack=Unpack.PLACE if file.endswith(".mat") else Unpack.EXTRACT)
        for file, size, sha in (
            ("cars_train.tgz", 979269282, "512b227b30e2f0a8aab9e09485786ab4479582073a144998da74d64b801fd288"),
            ("cars_test.tgz", 977350468, "bffea656d6f425cba3c91c6d83336e4c5f86c6cffd8975b0f375d3a10da8e243"),
            ("car_devkit.tgz", 330960, "b97deb463af7d58b6bfaa18b2a4de9829f0f79e8ce663dfa9261bf7810e9accd"),
            ("cars_test_annos_withlabels.mat", 185758,
             "790f75be8ea34eeded134cc559332baf23e30e91367e9ddca97d26ed9b895f05"))),
        page="https://ai.stanford.edu/~jkrause/cars/car_dataset.html (gone)",
        manual="Stanford's download links are gone; the four original files are mirrored on Kaggle and elsewhere "
               "(search for their names). The checksums below are of the original files, so a mirror that repacked "
               "them is refused."),
    "imagenet": Recipe(tuple(
        Archive(file, size=size, md5=md5, source=TV + (f"; size: {TFDS}" if size else ""), unpack=Unpack.PLACE)
        for file, size, md5 in (("ILSVRC2012_img_train.tar", 147897477120, "1d675b47d978889d74fa0da5fadfb00e"),
                                ("ILSVRC2012_img_val.tar", 6744924160, "29b22e2961454d5413ddabcf34fc5622"),
                                ("ILSVRC2012_devkit_t12.tar.gz", None, "fa75699e90414af021442c21a62c3abf"))),
        page="https://image-net.org/challenges/LSVRC/2012/2012-downloads.php",
        manual="ImageNet needs an account at image-net.org and its terms of access accepted: log in, open the page "
               "below, and download the training images (Task 1 & 2), the validation images (all tasks) and the "
               "development kit (Task 1 & 2).",
        check_splits=False,
        note="the tars are placed in ROOT as they are; torchvision checks them and sorts them into class folders "
             "the first time the dataset is read (hours for the 1.28M training images)"),
}
# The official number of images per split, which `check-data` compares against.
OFFICIAL_SIZES: dict[str, dict[str, int]] = {
    "cifar10": {"train": 50000, "test": 10000}, "cifar100": {"train": 50000, "test": 10000},
    "mnist": {"train": 60000, "test": 10000}, "svhn": {"train": 73257, "test": 26032},
    "stl10": {"train": 5000, "test": 8000}, "dtd": {"train": 1880, "val": 1880, "test": 1880},
    "flowers102": {"train": 1020, "val": 1020, "test": 6149}, "pets": {"train": 3680, "test": 3669},
    "food101": {"train": 75750, "test": 25250}, "imagenet": {"train": 1281167, "test": 50000},
    "aircraft": {"train": 3334, "val": 3333, "test": 3333}, "cars": {"train": 8144, "test": 8041},
}
LABEL_ATTRIBUTES = ("targets", "labels", "_labels", "y")
# the layouts whose files torchvision reads with a plain pickle.load: each is read with data types only first
PICKLED = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def make_loader(name: str, class_name: str, style: str):
    def load(split: str, root: Path | None) -> ImageSplit:
        import torchvision.datasets

        cls = getattr(torchvision.datasets, class_name)
        if name in PICKLED and root is not None:
            refuse_code_in_pickles(root / PICKLED[name])
        try:
            no_download = {} if style == "imagenet" else {"download": False}  # ImageNet never downloads
            dataset = cls(str(root), **no_download, **split_kwargs(style, split))
        except (RuntimeError, FileNotFoundError, OSError) as err:
            raise MissingDataError(f"torchvision {class_name} could not load split {split!r} from {root}: {err}. "
                                   f"Put the files in torchvision's layout there (download is disabled): "
                                   f"{DOWNLOADS.get(name, 'see torchvision docs')}.") from None
        return split_from_torchvision(dataset)

    return load


def refuse_code_in_pickles(folder: Path) -> None:
    """Read every pickle of the folder with `safe_pickle` (a file that names code is refused) before
    torchvision's own `pickle.load` opens them."""
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        if path.is_file() and path.suffix not in (".html", ".txt"):
            safe_pickle.load(path, encoding="latin1")


def split_kwargs(style: str, split: str) -> dict[str, Any]:
    if style == "train_flag":
        return {"train": split == "train"}
    if style == "pets":
        return {"split": "trainval" if split == "train" else "test"}
    if style == "imagenet":
        return {"split": "val" if split == "test" else split}
    return {"split": split}


def split_from_torchvision(dataset: Any) -> ImageSplit:
    """Arrays when the dataset holds them in memory (CIFAR, MNIST, SVHN, STL), else lazy file access."""
    pairs = getattr(dataset, "_samples", None)  # StanfordCars keeps (path, label) pairs only
    if pairs is not None:
        return ImageSplit([Path(path) for path, _ in pairs], np.asarray([label for _, label in pairs], dtype=np.int64))
    labels = np.asarray(next(getattr(dataset, a) for a in LABEL_ATTRIBUTES if hasattr(dataset, a)), dtype=np.int64)
    data = getattr(dataset, "data", None)
    if data is not None and not isinstance(data, list):
        array = np.asarray(data)
        if array.ndim == 4 and array.shape[1] == 3:  # SVHN / STL10 store CHW
            array = array.transpose(0, 2, 3, 1)
        return ImageSplit(np.ascontiguousarray(array, dtype=np.uint8), labels)
    files = (getattr(dataset, "_image_files", None) or getattr(dataset, "_images", None)  # Pets: `_images`
             or [path for path, _ in getattr(dataset, "samples", [])])
    return ImageSplit(list(files), labels)


for _name, (_cls, _style, _classes, _metric, _splits, _layout) in LAYOUTS.items():
    register_dataset(DatasetSpec(name=_name, num_classes=_classes, load=make_loader(_name, _cls, _style),
                                 metric=_metric,
                                 splits=_splits, needs_root=True, layout=f"torchvision {_cls} layout: {_layout}",
                                 description=f"torchvision {_cls} from a local root",
                                 official_sizes=OFFICIAL_SIZES.get(_name, {}), download=DOWNLOADS.get(_name, ""),
                                 fetch=RECIPES.get(_name),
                                 class_names_from=imagenet_class_names if _name == "imagenet" else None))
