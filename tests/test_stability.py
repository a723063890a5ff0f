"""`stability: N`: reruns under rounding-level perturbations, their spread in the row, and the marks
tables and leaderboards put on cells a rerun prints differently (issue 33)."""

import numpy as np
import pytest
import yaml

import cli
from benchmark.config import load_suite
from benchmark.errors import UserError
from benchmark.pipeline.stability import nudged, perturbed
from benchmark.protocols import Features, FeatureTask
from benchmark.results import ResultsStore
from benchmark.results.leaderboard import stability_mark
from benchmark.results.report import format_cell, prints_differently, protocol_tables, render_protocol_table
from benchmark.vocab import Metric


def test_a_perturbed_rerun_moves_each_feature_by_at_most_one_unit_and_reorders_train(rng):
    x = rng.normal(size=(50, 8)).astype(np.float32) * 100
    task = FeatureTask(Features(x[:30], np.arange(30)), Features(x[30:40], np.arange(10)),
                       Features(x[40:], np.arange(10)), 30, Metric.TOP1)
    moved = perturbed(task, 1)
    order = np.argsort(moved.train.y)  # labels travel with their rows
    ulps = np.abs(moved.train.x[order].view(np.int32) - x[:30].view(np.int32))
    assert ulps.max() == 1 and 0.5 < (ulps == 1).mean() < 0.8  # about two thirds of the entries move
    assert moved.train.y.tolist() != list(range(30)) and sorted(moved.train.y.tolist()) == list(range(30))
    assert moved.test.y.tolist() == list(range(10))  # test keeps its order: per-example outputs stay aligned
    assert np.abs(moved.test.x.view(np.int32) - x[40:].view(np.int32)).max() == 1
    assert perturbed(task, 1).train.x.tobytes() == moved.train.x.tobytes()  # seeded
    assert perturbed(task, 2).train.x.tobytes() != moved.train.x.tobytes()
    assert nudged(np.zeros(4, np.float32), np.random.default_rng(0)).tolist() == [0.0] * 4


def write(path, stability):
    path.write_text(yaml.safe_dump({"name": "s", "protocols": {"knn": {"stability": stability},
                                                               "linear": {"solver": "fast", "num_wd": 4}},
                                    "datasets": {"digits": {"protocols": ["knn", "linear"]}}}))
    return path


def test_reruns_are_stored_with_their_spread_and_enter_the_cell_key(tmp_path, capsys):
    results, suite = tmp_path / "r.sqlite", write(tmp_path / "s.yaml", 2)
    args = ["--model", "pixels:8", "--results", str(results), "--cache-dir", str(tmp_path / "cache")]
    assert cli.main(["evaluate", "--suite", str(suite), *args]) == 0
    rows = ResultsStore(results).latest().set_index("protocol")
    stability = rows.loc["knn", "details"]["stability"]
    assert stability["runs"] == 2 and len(stability["values"]) == 2
    values = [rows.loc["knn", "value"], *stability["values"]]
    assert stability["spread"] == pytest.approx(max(values) - min(values))
    assert all(abs(v - rows.loc["knn", "value"]) < 2 for v in values)  # rounding-level: no other experiment
    assert "stability" not in rows.loc["linear", "details"]  # asked of knn only
    assert rows.loc["knn", "key_fields"]["params"]["stability"] == 2
    assert "stability" not in rows.loc["linear", "key_fields"]["params"]  # absent when not asked: keys unchanged
    capsys.readouterr()
    assert cli.main(["table", "--results", str(results)]) == 0
    assert "≈: a rerun of the cell under rounding-level perturbations" in capsys.readouterr().out
    write(suite, 0)
    assert cli.main(["evaluate", "--suite", str(suite), *args]) == 0
    out = capsys.readouterr().out
    assert "1 computed, 1 reused" in out  # without reruns, knn is another cell; linear is reused


@pytest.mark.parametrize("bad", [-1, 1.5, "three", True, 101])
def test_a_bad_stability_is_one_message(tmp_path, bad):
    suite = write(tmp_path / "s.yaml", bad)
    with pytest.raises(UserError, match="stability must be a number of reruns from 0 to 100"):
        load_suite(str(suite)).tasks("digits")


def test_tables_mark_a_value_that_a_rerun_prints_differently():
    assert prints_differently(83.54, {"stability": {"values": [83.56, 83.52], "spread": 0.04}}, 1)  # 83.5 vs 83.6
    assert not prints_differently(83.51, {"stability": {"values": [83.54, 83.52], "spread": 0.03}}, 1)
    assert not prints_differently(83.54, {"val_score": 1.0}, 1) and not prints_differently(83.54, None, 1)
    assert format_cell(83.54, 1.6, False, unstable=True) == "83.5≈ ± 1.6"
    assert format_cell(83.54, 1.6, True) == "**83.5 ± 1.6**"
    assert "spread" in stability_mark(0.42) and "≈0.4" in stability_mark(0.42) and stability_mark(float("nan")) == ""
    assert "stable" in stability_mark(0.0)


def test_the_table_marks_only_the_cell_a_rerun_prints_differently():
    import pandas as pd

    rows = pd.DataFrame([
        {"encoder": "a", "dataset": "d1", "protocol": "linear", "metric": "top1", "value": 83.54,
         "details": {"stability": {"runs": 2, "values": [83.56, 83.40], "spread": 0.16}}},
        {"encoder": "a", "dataset": "d2", "protocol": "linear", "metric": "top1", "value": 90.0,
         "details": {"stability": {"runs": 2, "values": [90.0, 90.0], "spread": 0.0}}}])
    text = render_protocol_table(protocol_tables(rows, with_ci=False)[0])
    assert "83.5≈" in text and "90.0≈" not in text and "90.0" in text


def test_a_fine_tuning_cell_reruns_with_its_train_images_reordered():
    from benchmark.protocols.base import ModelTask

    task = ModelTask(Features(np.arange(12), np.arange(12) % 3), Features(np.arange(12, 15), np.arange(3)),
                     Features(np.arange(15, 18), np.arange(3)), 3, Metric.TOP1)
    moved = perturbed(task, 1)
    assert sorted(moved.train.x.tolist()) == list(range(12)) and moved.train.x.tolist() != list(range(12))
    assert (moved.train.y == moved.train.x % 3).all()  # each image keeps its label
    assert moved.val == task.val and moved.test == task.test
