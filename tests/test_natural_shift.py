"""Natural distribution shift (issue 35): ImageNet-V2, -Sketch, -A and -R in their published layouts, heads
fitted on ImageNet's train split, A and R scored over their 200 classes, and effective robustness."""

import pkgutil
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import cli
from benchmark.data import DATASETS, load_split
from benchmark.data.imagenet_shift import subset_indices, synsets
from benchmark.errors import UserError
from benchmark.protocols import make_protocol
from benchmark.protocols.base import Features, FeatureTask, restricted
from benchmark.results import ResultsStore
from benchmark.results.shift import effective_robustness, expit_percent, logit, robustness_lines
from tests.miniatures import write_imagenet_shifts

SUITE = Path(__file__).parents[1] / "suites" / "natural_shift.yaml"


def test_a_and_r_map_their_200_wordnet_ids_to_imagenet_class_indices():
    for name in ("imagenet_a", "imagenet_r"):
        published = pkgutil.get_data("timm.data", f"_info/{name}_indices.txt").decode().split()
        assert subset_indices(name) == tuple(int(i) for i in published) and len(subset_indices(name)) == 200
        assert DATASETS.get(name).class_subset == subset_indices(name)
    assert synsets()[6] == "n01498041" and subset_indices("imagenet_a")[0] == 6  # stingray: A's first class
    assert DATASETS.get("imagenet_v2").class_subset == () and DATASETS.get("imagenet_sketch").train_from == "imagenet"


def test_each_layout_loads_with_imagenet_class_indices(tmp_path):
    write_imagenet_shifts(tmp_path, classes=14, shifted=2)
    v2 = load_split(DATASETS.get("imagenet_v2"), "test", tmp_path / "imagenet_v2")
    assert len(v2) == 28 and sorted(set(v2.labels)) == list(range(14))  # folder "10" is class 10, not 2
    assert v2.labels[v2.images.index(next(p for p in v2.images if p.parent.name == "10"))] == 10
    a = load_split(DATASETS.get("imagenet_a"), "test", tmp_path / "imagenet_a")
    r = load_split(DATASETS.get("imagenet_r"), "test", tmp_path / "imagenet_r")
    assert sorted(set(a.labels)) == [6, 11, 13] and sorted(set(r.labels)) == [1, 2, 4, 6, 8, 9, 11, 13]
    (tmp_path / "imagenet_a" / "imagenet-a" / "n01440764").mkdir()  # tench: not one of A's 200 classes
    with pytest.raises(UserError, match="not among its 200 ImageNet classes: n01440764"):
        load_split(DATASETS.get("imagenet_a"), "test", tmp_path / "imagenet_a")


def test_restricted_scores_pick_the_best_allowed_class():
    scores = np.array([[5.0, 1.0, 3.0, 2.0], [0.0, 9.0, 1.0, 4.0]])
    assert restricted(scores, (1, 2)).argmax(1).tolist() == [2, 1]
    assert restricted(scores, ()).argmax(1).tolist() == [0, 1]


class OneHotText:
    """A text tower that embeds a prompt as the one-hot vector of the class name it contains."""

    logit_scale = 1.0

    def __init__(self, names: tuple[str, ...]):
        self.names = names

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        return torch.stack([torch.eye(len(self.names))[next(i for i, n in enumerate(self.names) if n in p)]
                            for p in prompts])


def test_zero_shot_restricts_its_logits_to_the_subset():
    names = ("tench", "goldfish", "shark", "hen")
    x = np.array([[0.6, 0.4, 0.0, 0.0], [0.0, 0.0, 0.3, 0.7]], dtype=np.float32)  # mostly 0 (outside), mostly 3
    test = Features(x, np.array([1, 3]))
    task = dict(train=test, val=test, test=test, num_classes=4, metric="top1", class_names=names,
                text=OneHotText(names), dataset="toy")
    zeroshot = make_protocol("zeroshot", {"templates": ["a photo of a {}."]})
    assert zeroshot.evaluate(FeatureTask(**task)).value == 50.0
    assert zeroshot.evaluate(FeatureTask(**task, test_classes=(1, 3))).value == 100.0


def run_suite(tmp_path: Path, protocols: list[str]) -> tuple[int, str, pd.DataFrame]:
    suite = tmp_path / "shift.yaml"
    suite.write_text(yaml.safe_dump({
        "include": str(SUITE), "preprocessing": {"input_size": 8, "resize_size": 8},
        "protocols": {"linear": {"epochs": 30, "batch_size": 16, "lrs": [0.1, 1.0, 10.0]}},
        "datasets": {name: {"protocols": protocols} for name in yaml.safe_load(SUITE.read_text())["datasets"]}}))
    code = cli.main(["evaluate", "--suite", str(suite), "--model", "pixels:4", "--data-root", str(tmp_path / "data"),
                     "--results", str(tmp_path / "r.sqlite"), "--cache-dir", str(tmp_path / "cache")])
    return code, suite.read_text(), ResultsStore(tmp_path / "r.sqlite").latest()


def test_the_suite_fits_on_imagenet_once_and_scores_every_shift(tmp_path, capsys):
    write_imagenet_shifts(tmp_path / "data")
    code, _, rows = run_suite(tmp_path, ["linear", "knn", "zeroshot"])
    out = capsys.readouterr().out
    assert code == 0, out
    values = rows.set_index(["dataset", "protocol"])["value"]
    assert set(rows["dataset"]) == {"imagenet", "imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"}
    # A's classes 6 and 11 are drawn mostly as classes 5 and 10, which A lacks: restricted to A's 200 classes,
    # both are right; unrestricted (measured by dropping the restriction) linear scored 66.7 and knn 33.3
    assert values[("imagenet_a", "knn")] == 100.0 and values[("imagenet_a", "linear")] == 100.0
    assert values[("imagenet_v2", "knn")] == 100.0 and values[("imagenet", "knn")] == 100.0
    keys = rows.set_index(["dataset", "protocol"])["cache_keys"]
    assert keys[("imagenet_v2", "knn")]["train"] == keys[("imagenet", "knn")]["train"]  # one extraction serves all
    assert "imagenet: pooled features extracted 2 split(s) (train 84, test 42)" in out
    for shift, images in (("imagenet_v2", 28), ("imagenet_sketch", 28), ("imagenet_a", 6), ("imagenet_r", 16)):
        assert f"{shift}: pooled features extracted 1 split(s) (train 84, test {images})" in out  # train: cached
    assert "imagenet_a zeroshot: skipped (pixels:4 has no text" in out
    assert "- knn · imagenet_a: pixels:4 100.0 → 100.0 (+0.0); no fit (1 encoder; the line needs 3)" in out
    assert cli.main(["table", "--results", str(tmp_path / "r.sqlite")]) == 0
    table = capsys.readouterr().out
    assert "## Natural distribution shift" in table
    assert re.search(r"\| pixels:4 +\| \*\*100\.0 ± 0\.0\*\* +\| \*\*100\.0 ± 0\.0\*\*", table)  # imagenet, v2


def test_effective_robustness_by_hand():
    e1, e2, half_drop = (float(expit_percent(np.array([v]))[0]) for v in (1.0, 2.0, -1.0))
    rows = pd.DataFrame([
        {"encoder": e, "dataset": d, "protocol": "linear", "value": v, "id": i, "created": i}
        for i, (e, d, v) in enumerate([("a", "imagenet", 50.0), ("b", "imagenet", e1), ("c", "imagenet", e2),
                                       ("a", "imagenet_v2", half_drop), ("b", "imagenet_v2", 50.0),
                                       ("c", "imagenet_v2", 80.0)])])
    table = effective_robustness(rows).set_index("encoder")
    # logits: imagenet 0, 1, 2; v2 -1, 0, ln 4. Least squares: slope (1 + ln 4) / 2, intercept mean(y) - slope
    slope = (1 + np.log(4.0)) / 2
    intercept = (np.log(4.0) - 1) / 3 - slope
    assert table["slope"].iloc[0] == pytest.approx(slope) and table["intercept"].iloc[0] == pytest.approx(intercept)
    predicted_c = 100 / (1 + np.exp(-(2 * slope + intercept)))
    assert table.loc["c", "effective_robustness"] == pytest.approx(80.0 - predicted_c)
    assert table.loc["c", "effective_robustness"] > 0 > table.loc["b", "effective_robustness"]
    assert logit(np.array([80.0]))[0] == pytest.approx(np.log(4.0))
    line = robustness_lines(rows)[0]
    assert line.startswith("linear · imagenet_v2: a 50.0 → 26.9 (-23.1, effective robustness") and "fit over 3" in line
    assert robustness_lines(rows[rows["encoder"] != "c"])[0].endswith("no fit (2 encoders; the line needs 3)")
    same = rows.assign(value=rows["value"].where(rows["dataset"] != "imagenet", 60.0))
    assert robustness_lines(same)[0].endswith("no fit (every encoder has the same ImageNet accuracy)")
