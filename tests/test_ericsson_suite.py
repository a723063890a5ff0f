"""The Ericsson 2021 suite end to end on format-exact miniatures of every official download: each loader
reads its layout as the reference does, `check-data` finds every dataset, and `evaluate` fills every
published cell, which `table --compare` lays out beside the paper's."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import cli
from benchmark.data import DATASETS, load_split
from benchmark.data.cdfsl import CHESTX_CLASSES
from benchmark.results import ResultsStore
from benchmark.results.reference import load_reference
from tests.miniatures import (CALTECH101_SIZES, write_caltech101, write_chestx, write_ericsson_suite, write_isic,
                              write_sun397)

# sha256 of github.com/linusericsson/ssl-transfer caltech101-splits/{train,test}.txt (commit 416913f)
TRAIN_TXT_SHA256 = "8dca4e4db1a37f376193ad43ebf48a52d76a85909ad3e221026182a4fdb2e1a3"
TEST_TXT_SHA256 = "b9ed3419c72dff3f1ad3cb7cee5eb756e6e59502cc0062d46f3b454da3f87c24"
SUITE = Path(__file__).resolve().parents[1] / "suites" / "ericsson2021.yaml"


@pytest.fixture
def no_md5(monkeypatch):
    """The miniatures hold the real file structure but not the real bytes, so torchvision's md5 checks of
    the CIFAR batches and the Flowers .mat files are switched off; everything else is torchvision's path."""
    import torchvision.datasets.cifar
    import torchvision.datasets.flowers102

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    monkeypatch.setattr(torchvision.datasets.flowers102, "check_integrity", lambda *args, **kwargs: True)


def listing(split, end: str) -> bytes:
    """A split as the reference's caltech101-splits/<split>.txt lists it: "<class>/<file> <label>" lines
    (its train.txt is stored with CRLF line ends, its test.txt with LF)."""
    return "".join(f"{p.parent.name}/{p.name} {label}{end}" for p, label in zip(split.images, split.labels)).encode()


def test_caltech101_regenerates_the_reference_split_lists_byte_for_byte(tmp_path):
    """With Caltech-101's real class folders and sizes (empty files stand in for the images), the seeded
    rule writes exactly the lists ssl-transfer ships: the sha256 of its caltech101-splits/{train,test}.txt."""
    for name, size in CALTECH101_SIZES.items():
        (tmp_path / "101_ObjectCategories" / name).mkdir(parents=True)
        for n in range(1, size + 1):
            (tmp_path / "101_ObjectCategories" / name / f"image_{n:04d}.jpg").touch()
    spec = DATASETS.get("caltech101")
    train, test = load_split(spec, "train", tmp_path), load_split(spec, "test", tmp_path)
    assert (len(train), len(test)) == (2416, 6728) == (spec.official_sizes["train"], spec.official_sizes["test"])
    assert hashlib.sha256(listing(train, "\r\n")).hexdigest() == TRAIN_TXT_SHA256
    assert hashlib.sha256(listing(test, "\n")).hexdigest() == TEST_TXT_SHA256


def test_sun397_reads_partition_01_with_two_level_classes(tmp_path):
    write_sun397(tmp_path, {"train": 2, "test": 1})
    spec = DATASETS.get("sun397")
    test = load_split(spec, "test", tmp_path)
    names = ["abbey", "bakery/shop", "castle", "church/indoor", "church/outdoor"]  # sorted ClassName.txt entries
    assert [names[label] for label in test.labels] == names
    assert [p.relative_to(tmp_path / "SUN397").parent.as_posix()[2:] for p in test.images] == names
    assert len(load_split(spec, "train", tmp_path)) == 10


def test_isic_labels_are_the_one_hot_column_and_chestx_keeps_single_findings_at_256(tmp_path):
    write_isic(tmp_path / "isic", per_class=2, classes=3)
    isic = load_split(DATASETS.get("isic"), "train", tmp_path / "isic")
    assert isic.labels.tolist() == [0, 0, 1, 1, 2, 2] and isic.images[2].name == "ISIC_0024308.jpg"
    write_chestx(tmp_path / "chestx", per_class=2, classes=7)
    chestx = load_split(DATASETS.get("chestx"), "train", tmp_path / "chestx")
    assert len(chestx) == 14  # "No Finding", "Pneumonia" and the two multi-label rows are dropped
    assert [CHESTX_CLASSES[label] for label in chestx.labels[::2]] == list(CHESTX_CLASSES)
    image = chestx.image_tensor(3)  # a grey 8x8 PNG, opened as the reference opens it: 256 x 256 RGB
    assert image.shape == (3, 256, 256) and torch.equal(image[0], image[2])
    assert len(chestx.subset(np.array([1, 5]))) == 2


def test_a_missing_dataset_names_its_archive_and_a_short_one_its_official_size(tmp_path, capsys):
    write_caltech101(tmp_path / "caltech101", per_class=40, classes=2)
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nprotocols: {linear: {}}\ndatasets: {caltech101: {}, isic: {}}\n")
    assert cli.main(["check-data", "--suite", str(suite), "--data-root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "caltech101     INCOMPLETE: split 'train' has" in out and "the official split has 2416" in out
    assert "isic           INCOMPLETE: not found" in out
    assert "download: ISIC2018_Task3_Training_Input.zip and ISIC2018_Task3_Training_GroundTruth.zip" in out


def test_the_whole_suite_runs_on_miniatures_and_lines_up_with_every_published_column(tmp_path, capsys, no_md5):
    """Every (dataset, protocol) cell of suites/ericsson2021.yaml ends in a stored row, at a tiny budget
    (16 px, 5 episodes of 1 query, 2 fine-tune steps): the layout, not the values, is what is checked."""
    import timm

    data = write_ericsson_suite(tmp_path / "data")
    assert cli.main(["check-data", "--suite", "ericsson2021", "--data-root", str(data)]) == 1  # all short, none missing
    report = capsys.readouterr().out
    assert "not found" not in report and "did not load" not in report and report.count("INCOMPLETE") == 16
    counts = {line.split()[0]: line.rsplit("(", 1)[1].split(")")[0] for line in report.splitlines()
              if "INCOMPLETE" in line}
    # 5 classes x (14 train, 7 test) images, or x 7 in each of three splits
    assert counts["cars"] == counts["pets"] == counts["cifar100"] == counts["food101"] == "train 70, test 35"
    assert counts["flowers102"] == counts["dtd"] == counts["aircraft"] == "train 35, val 35, test 35"
    assert counts["imagenet"] == "train 20, test 10" and counts["chestx"] == "train 255"

    small = {"queries": 1, "episodes": 5, "preprocessing": {"resize_size": 18, "input_size": 16}}
    suite = tmp_path / "budget.yaml"
    suite.write_text(yaml.safe_dump({
        "include": str(SUITE), "preprocessing": {"input_size": 16, "resize_size": 16},
        "protocols": {"linear": {"num_wd": 3}, "finetune": {"steps": 2, "batch_size": 8, "lrs": [0.01],
                                                             "regularisation": [0.0]},
                      "fewshot": small, "fewshot_5shot": small, "fewshot_50shot": small}}))
    weights = tmp_path / "simclr-v1.pth"  # named as the model list names SimCLR-v1's prepared file
    torch.save(timm.create_model("test_resnet", num_classes=0).state_dict(), weights)
    results = tmp_path / "r.sqlite"
    code = cli.main(["evaluate", "--suite", str(suite), "--model", f"timm:test_resnet@{weights}", "--data-root",
                     str(data), "--results", str(results), "--cache-dir", str(tmp_path / "cache")])
    out, err = capsys.readouterr()
    assert code == 0 and "FAILED" not in out + err, err
    rows = ResultsStore(results).latest()
    suite_cells = sum(len(entry["protocols"]) for entry in yaml.safe_load(SUITE.read_text())["datasets"].values())
    assert len(rows) == suite_cells == 55
    cdfsl = {"cropdiseases", "eurosat", "isic", "chestx"}
    assert set(rows.loc[rows["protocol"] == "fewshot_50shot", "dataset"]) == cdfsl
    assert (rows.loc[rows["protocol"] == "fewshot_50shot", "protocol_kind"] == "fewshot").all()
    imagenet = rows[rows["dataset"] == "imagenet"].iloc[0]  # the papers' recipe, in the `linear` column
    assert (imagenet["protocol"], imagenet["protocol_kind"], imagenet["details"]["input"]) == (
        "linear", "linear_sgd", "augment")
    assert imagenet["params"]["epochs"] == 100 and len(imagenet["details"]["grid"]) == 16
    few, linear = (rows[(rows["dataset"] == "cars") & (rows["protocol"] == p)].iloc[0] for p in ("fewshot", "linear"))
    assert few["preprocessing"]["resize_mode"] == "square" and few["preprocessing"]["interpolation"] == "bilinear"
    assert linear["preprocessing"]["resize_mode"] == "shorter" and linear["preprocessing"]["interpolation"] == "bicubic"

    assert cli.main(["table", "--compare", "ericsson2021", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "Ours, in the published layout (47 of 47 columns with a value of ours)" in out
    sources = out.split("Where these published values come from")[1].split("Ours")[0]
    assert "MoCo-v1 / imagenet / linear 60.60: facebookresearch/moco README" in sources and sources.count("\n- ") == 14
    compared = out.split("Ours vs published:")[1]
    assert len([line for line in compared.splitlines() if line.startswith("| SimCLR-v1")]) == 47
    published = load_reference("ericsson2021").query("encoder == 'SimCLR-v1' and dataset == 'isic' and shots == 50")
    line = next(line for line in compared.splitlines() if "5-way 50-shot | isic" in line)
    assert f"{published['value'].item():.2f}" == [cell.strip() for cell in line.split("|")][5]


def test_a_suite_column_names_the_protocol_it_runs_and_reads_images_its_own_way(tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nprotocols:\n  fewshot: {episodes: 20}\n"
                     "  few_small: {protocol: fewshot, shots: 5, episodes: 20, preprocessing: {input_size: 4}}\n"
                     "datasets: {digits: {}}\n")
    common = ["--suite", str(suite), "--model", "pixels:8", "--results", str(tmp_path / "r.sqlite"), "--cache-dir",
              str(tmp_path / "cache")]
    assert cli.main(["evaluate", *common, "--protocol", "few_small"]) == 0
    rows = ResultsStore(tmp_path / "r.sqlite").latest()
    assert rows[["protocol", "protocol_kind"]].values.tolist() == [["few_small", "fewshot"]]
    assert rows["chosen"].item()["shots"] == 5 and rows["preprocessing"].item()["input_size"] == 4
    assert rows["split_sizes"].item() and "from cache" not in capsys.readouterr().out
    assert cli.main(["evaluate", *common]) == 0  # the plain column extracts at 8 px: another cache entry
    rows = ResultsStore(tmp_path / "r.sqlite").latest().set_index("protocol")
    assert rows.loc["fewshot", "preprocessing"]["input_size"] == 8 and rows.loc["fewshot", "chosen"]["shots"] == 20
    assert rows.loc["few_small", "value"] != rows.loc["fewshot", "value"]

    suite.write_text("name: s\nprotocols: {few: {protocol: fewshoot}}\ndatasets: {digits: {}}\n")
    assert cli.main(["evaluate", *common]) == 2
    assert "Did you mean 'fewshot'" in capsys.readouterr().err


def hub_dataset_cache(home: Path, repo: str, revision: str) -> None:
    """A dataset repository in the hub cache as `huggingface-cli download --repo-type dataset` leaves it:
    datasets--ORG--NAME/{refs/main, snapshots/REV/data/<split>-00000-of-00001.parquet}."""
    import datasets
    from PIL import Image

    folder = home / "hub" / f"datasets--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)
    (folder / "snapshots" / revision / "data").mkdir(parents=True)
    features = datasets.Features({"img": datasets.Image(), "fine_label": datasets.ClassLabel(names=["red", "blue"])})
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("test", 6)):
        labels = [i % 2 for i in range(count)]
        colours = np.array([[200, 30, 30], [30, 30, 200]], dtype=np.uint8)  # a direction, as k-NN's cosine sees it
        pixels = [Image.fromarray(colours[label] + rng.integers(0, 20, (8, 8, 3), dtype=np.uint8)) for label in labels]
        datasets.Dataset.from_dict({"img": pixels, "fine_label": labels}, features=features).to_parquet(
            str(folder / "snapshots" / revision / "data" / f"{split}-00000-of-00001.parquet"))


def test_a_hub_dataset_by_name_loads_offline_from_the_hub_cache_with_its_revision_recorded(tmp_path):
    import os
    import subprocess
    import sys

    revision = "0123456789abcdef0123456789abcdef01234567"
    hub_dataset_cache(tmp_path / "home", "someone/tiny_shades", revision)
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nprotocols: {knn: {k: [3]}, linear: {num_wd: 3}}\ndatasets:\n  shades: {source: hf_hub, "
                     "repo: someone/tiny_shades, num_classes: 2, image_column: img, label_column: fine_label}\n")
    env = os.environ | {"HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    run = lambda *args: subprocess.run([sys.executable, "cli.py", *args], cwd=Path(__file__).resolve().parents[1],
                                       env=env, capture_output=True, text=True, timeout=300)
    done = run("evaluate", "--suite", str(suite), "--model", "pixels:4", "--results", str(tmp_path / "r.sqlite"),
               "--cache-dir", str(tmp_path / "cache"))
    assert done.returncode == 0, done.stderr[-2000:]
    rows = ResultsStore(tmp_path / "r.sqlite").latest().set_index("protocol")
    assert rows.loc["knn", "value"] == 100.0 and rows.loc["knn", "split_sizes"] == {"train": 10, "val": 2, "test": 6}  # 12 train images, 20% held out
    assert rows.loc["linear", "details"]["dataset_revision"] == revision

    suite.write_text(suite.read_text().replace("someone/tiny_shades", "someone/not_cached"))
    done = run("check-data", "--suite", str(suite))
    assert done.returncode == 1 and "huggingface-cli download --repo-type dataset someone/not_cached" in done.stdout
    assert "Traceback" not in done.stderr
