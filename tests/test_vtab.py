"""VTAB-1k (issue 35): its task folders in the published layout, VTAB's split rules, and its group means."""

from pathlib import Path

import numpy as np
import pytest
import yaml

import cli
from benchmark.data import DATASETS, load_split
from benchmark.errors import UserError
from benchmark.groups import VTAB_GROUPS, vtab_dataset
from benchmark.results import ResultsStore
from benchmark.results.groups import vtab_means
from tests.miniatures import write_vtab_task


def test_the_suite_has_vtabs_19_tasks_with_the_1k_split_sizes_of_its_rules():
    from benchmark.config import load_suite

    names = [vtab_dataset(f) for folders in VTAB_GROUPS.values() for f in folders]
    assert len(names) == 19 and [len(v) for v in VTAB_GROUPS.values()] == [7, 4, 8]
    assert list(load_suite("vtab1k").datasets) == names
    for name in names:
        spec = DATASETS.get(name)
        assert spec.splits == ("train", "val", "test") and spec.official_sizes == {"train": 800, "val": 200}
    assert DATASETS.get("vtab_sun397").num_classes == 397 and DATASETS.get("vtab_smallnorb_ele").num_classes == 9


def test_a_task_folder_loads_its_lists_and_refuses_a_train800val200_that_is_not_their_union(tmp_path):
    root = write_vtab_task(tmp_path / "vtab-1k" / "dtd", {"train": 8, "val": 4, "test": 6}, classes=2)
    spec = DATASETS.get("vtab_dtd")
    train, val, test = (load_split(spec, s, root) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (8, 4, 6)
    assert train.labels.tolist() == [0, 1] * 4 and train.image_tensor(0).shape == (3, 8, 8)
    lines = (root / "train800val200.txt").read_text().splitlines()
    (root / "train800val200.txt").write_text("\n".join(lines[:-1]) + "\n")  # one val200 image dropped
    with pytest.raises(UserError, match="train800val200.txt is not train800.txt \\+ val200.txt"):
        load_split(spec, "val", root)
    (root / "test.txt").write_text("images/000000.jpg 0\nimages/nowhere.jpg 1\n")
    with pytest.raises(UserError, match="names 1 image\\(s\\) not in"):
        load_split(spec, "test", root)
    (root / "test.txt").write_text("images/000000.jpg\n")
    with pytest.raises(UserError, match="line 1: expected `<image path> <label>`"):
        load_split(spec, "test", root)


def test_group_means_by_hand():
    values = {vtab_dataset(f): float(i) for i, f in enumerate(f for fs in VTAB_GROUPS.values() for f in fs)}
    means = vtab_means(values)  # natural: tasks 0-6, specialized 7-10, structured 11-18
    assert means == {"natural": 3.0, "specialized": 8.5, "structured": 14.5, "all 19 tasks": 9.0}
    del values["vtab_kitti"]
    assert vtab_means(values) == {"natural": 3.0, "specialized": 8.5}  # structured incomplete: no mean


def test_a_vtab_suite_runs_on_task_folders_and_reports_its_group_means(tmp_path, capsys):
    data = tmp_path / "data"
    natural = VTAB_GROUPS[next(iter(VTAB_GROUPS))]
    for folder in natural:
        write_vtab_task(data / "vtab-1k" / folder, {"train": 6, "val": 4, "test": 4})
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"include": str(Path(__file__).parents[1] / "suites" / "vtab1k.yaml"), "preprocessing": {"input_size": 8, "resize_size": 8},
                                     "protocols": {"linear": {"num_wd": 3}},
                                     "datasets": {vtab_dataset(f): {"protocols": ["linear"]} for f in natural}}))
    code = cli.main(["evaluate", "--suite", str(suite), "--model", "pixels:4", "--data-root", str(data),
                     "--results", str(tmp_path / "r.sqlite"), "--cache-dir", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    rows = ResultsStore(tmp_path / "r.sqlite").latest()
    assert code == 1 and set(rows["dataset"]) == {vtab_dataset(f) for f in natural}, out  # the others: not found
    mean = np.mean(rows["value"])
    assert f"linear · pixels:4: natural {mean:.1f}" in out
