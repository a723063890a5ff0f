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
from benchmark.results.report import format_cell, protocol_tables, render_protocol_table, rerun_mark
from benchmark.vocab import Metric


def test_a_perturbed_rerun_moves_each_feature_by_at_most_32_units_and_reorders_train(rng):
    x = rng.normal(size=(50, 8)).astype(np.float32) * 100
    x[0, :3] = [0.0, 1e-42, -1e-42]  # a ReLU's zero and two subnormals: left as they are
    task = FeatureTask(Features(x[:30], np.arange(30)), Features(x[30:40], np.arange(10)),
                       Features(x[40:], np.arange(10)), 30, Metric.TOP1)
    moved = perturbed(task, 1)
    order = np.argsort(moved.train.y)  # labels travel with their rows
    ulps = np.abs(moved.train.x[order].view(np.int32) - x[:30].view(np.int32))
    assert ulps.max() == 32 and 10 < np.median(ulps) < 22  # uniform over -32..32 units
    assert (np.sign(moved.train.x[order]) == np.sign(x[:30])).all()
    assert (np.abs(moved.train.x[order][1:] / x[1:30] - 1) < 4e-6).all()  # about 2e-6 of the value: another CPU's
    assert moved.train.x[order][0, :3].tolist() == x[0, :3].tolist()
    assert moved.train.y.tolist() != list(range(30)) and sorted(moved.train.y.tolist()) == list(range(30))
    assert moved.test.y.tolist() == list(range(10))  # test keeps its order: per-example outputs stay aligned
    assert 0 < np.abs(moved.test.x.view(np.int32) - x[40:].view(np.int32)).max() <= 32
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
    values = rows.loc["knn", "stability_runs"]  # the stored run's value, then its reruns'
    assert values[1:] == stability["values"] and stability["spread"] == pytest.approx(max(values) - min(values))
    assert rows.loc["knn", "value"] == pytest.approx(np.mean(values))  # what tables read: the mean of the runs
    assert all(abs(v - values[0]) < 2 for v in values)  # rounding-level: no other experiment
    assert rows.loc["knn", "key_fields"]["code"]["stability_reruns"] == "2"
    assert "stability_reruns" not in rows.loc["linear", "key_fields"]["code"]
    assert "stability" not in rows.loc["linear", "details"]  # asked of knn only
    assert rows.loc["knn", "key_fields"]["params"]["stability"] == 2
    assert "stability" not in rows.loc["linear", "key_fields"]["params"]  # absent when not asked: keys unchanged
    capsys.readouterr()
    assert cli.main(["table", "--results", str(results)]) == 0
    assert "shows the mean over its run and its reruns" in capsys.readouterr().out
    write(suite, 0)
    assert cli.main(["evaluate", "--suite", str(suite), *args]) == 0
    out = capsys.readouterr().out
    assert "1 computed, 1 reused" in out  # without reruns, knn is another cell; linear is reused


@pytest.mark.parametrize("bad", [-1, 1.5, "three", True, 101])
def test_a_bad_stability_is_one_message(tmp_path, bad):
    suite = write(tmp_path / "s.yaml", bad)
    with pytest.raises(UserError, match="stability must be a number of reruns from 0 to 100"):
        load_suite(str(suite)).tasks("digits")


def test_tables_mark_a_value_that_a_rerun_prints_differently_with_a_prediction_bound():
    """The mark bounds where another machine's mean of as many runs may land: t(0.975, n - 1) x sd x
    sqrt(2 / n). Runs 83.54 / 83.56 / 83.52 (sd 0.02) print 83.5 and 83.6: 4.303 x 0.02 x 0.8165 = 0.070."""
    assert rerun_mark([83.54, 83.56, 83.52], 1) == pytest.approx(0.0703, abs=1e-4)
    assert rerun_mark([83.54, 83.56], 1) == pytest.approx(12.706 * 0.01414 * 1.0, rel=1e-3)  # one rerun: 1 df
    assert np.isnan(rerun_mark([83.51, 83.54, 83.52], 1)) and np.isnan(rerun_mark(None, 1))
    # Lite2's fine-tune runs on one kernel path, and the mean another path printed (perf/machines.py)
    native, sse_mean = [100.0, 99.02, 98.53], 97.22
    assert abs(np.mean(native) - sse_mean) > max(native) - min(native)  # the range did not cover the move
    assert abs(np.mean(native) - sse_mean) < rerun_mark(native, 1)  # the mark does (2.63)
    assert format_cell(83.54, 1.6, False, mark=0.4) == "83.5 ± 1.6 ≈0.4"
    assert format_cell(83.54, 1.6, True) == "**83.5 ± 1.6**"
    assert "0.42 away" in stability_mark(0.42) and "≈0.4" in stability_mark(0.42) and stability_mark(float("nan")) == ""
    assert "stable" in stability_mark(0.0)


def test_the_table_shows_the_mean_of_the_runs_and_marks_only_the_cell_they_print_differently():
    import pandas as pd

    rows = pd.DataFrame([
        {"encoder": "a", "dataset": "d1", "protocol": "linear", "metric": "top1", "value": 83.54,
         "details": {"stability": {"runs": 2, "values": [83.56, 83.40], "spread": 0.16}}},
        {"encoder": "a", "dataset": "d2", "protocol": "linear", "metric": "top1", "value": 90.0,
         "details": {"stability": {"runs": 2, "values": [90.0, 90.03], "spread": 0.03}}}])
    text = render_protocol_table(protocol_tables(rows, with_ci=False)[0])
    assert "83.5 ≈0.3" in text and "**90.0**" in text  # 83.5 = mean(83.54, 83.56, 83.40); sd 0.087
    rows.loc[0, "value"] = 83.70  # runs 83.70, 83.56, 83.40: their mean 83.55 prints 83.6, the first run alone 83.7
    assert "83.6 ≈0.5" in render_protocol_table(protocol_tables(rows, with_ci=False)[0])


def test_fine_tuning_reruns_keep_the_thread_count_and_feature_reruns_alternate(rng):
    import torch

    from benchmark.pipeline.stability import rerun_threads
    from benchmark.protocols.base import ModelTask

    features = FeatureTask(Features(np.zeros((4, 2), np.float32), np.arange(4)), None, None, 4, Metric.TOP1)
    model = ModelTask(Features(np.arange(4), np.arange(4)), None, None, 4, Metric.TOP1)
    threads = torch.get_num_threads()
    assert [rerun_threads(features, run) for run in (1, 2, 3, 4)] == [threads, 1, threads, 1]
    assert [rerun_threads(model, run) for run in (1, 2, 3, 4)] == [threads] * 4


def test_a_fine_tuning_cell_reruns_with_its_train_images_reordered():
    from benchmark.protocols.base import ModelTask

    task = ModelTask(Features(np.arange(12), np.arange(12) % 3), Features(np.arange(12, 15), np.arange(3)),
                     Features(np.arange(15, 18), np.arange(3)), 3, Metric.TOP1)
    moved = perturbed(task, 1)
    assert sorted(moved.train.x.tolist()) == list(range(12)) and moved.train.x.tolist() != list(range(12))
    assert (moved.train.y == moved.train.x % 3).all()  # each image keeps its label
    assert moved.val == task.val and moved.test == task.test


def test_the_cross_machine_verdict_accepts_only_moves_inside_every_paths_mark():
    """perf/machines.py's done-when check (issue 33): a cell may print differently across kernel paths only
    where every path marked it `≈s` and it moved by less than the smallest s."""
    import pandas as pd

    from perf.machines import PathRun, unexplained_cells

    cells = pd.MultiIndex.from_tuples([("lite1", "textures", "finetune"), ("lite2", "mnist5k", "linear")])

    def path(name, values, marks):
        values = pd.Series(values, index=cells)
        return PathRun(name, 1.0, [], values, pd.Series(marks, index=cells), values.map(lambda v: f"{v:.1f}"))

    native = path("native", [99.0, 93.3], [2.9, np.nan])
    assert unexplained_cells([native, path("avx2", [98.0, 93.3], [2.0, np.nan])]) == []  # moved 1.0 < 2.0
    (line,) = unexplained_cells([native, path("sse", [96.6, 93.3], [2.0, np.nan])])  # moved 2.4 >= 2.0
    assert "lite1 · textures · finetune: 99.0 / 96.6, moved 2.40" in line
    (line,) = unexplained_cells([native, path("one-thread", [99.0, 93.2], [2.9, np.nan])])  # unmarked
    assert "lite2 · mnist5k · linear: 93.3 / 93.2" in line
