"""`plan --estimate`: images per cell from the official split sizes, times from the encoder's measured
throughput (cached), with no data present."""

from __future__ import annotations

import json

import pytest

import cli
from benchmark.commands.plan import error_note
from benchmark.config import load_suite
from benchmark.cost import trained_images
from benchmark.devices import Precision
from benchmark.pipeline import estimate
from benchmark.pipeline.estimate import CellEstimate, Throughput


@pytest.fixture
def fixed_rates(monkeypatch):
    measured = []

    def measure(spec, device, input_size, batch, train_batch, precision):
        measured.append((spec, input_size, batch, train_batch))
        return Throughput(100.0, 10.0, "a test device", "2026-12-06")

    monkeypatch.setattr(estimate, "measure", measure)
    return measured


def test_the_ericsson_suite_is_estimated_from_official_sizes_without_data(tmp_path, fixed_rates, capsys):
    argv = ["plan", "--suite", "ericsson2021", "--model", "timm:resnet18", "--estimate", "--all",
            "--cache-dir", str(tmp_path / "cache"), "--results", str(tmp_path / "r.sqlite")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert fixed_rates == [("timm:resnet18", 224, 64, 64)]  # one input size, the run's batch, the fine-tune batch
    assert "224 px on a test device: extraction 100.0 img/s, training 10.0 img/s (measured now)" in out
    # ImageNet in the papers' recipe (linear_sgd, augment): 100 epochs over the 1,024,934 images left by the
    # hold-out, 100 over all 1,281,167 for the retrain, then the 256,233 held out and the 50,000 test once
    assert "linear·imagenet: 230,916,333 images extracted, 0 trained, 224 px -> 641.4 h" in out
    # 21 runs (20 pairs + the retrain) x 5,000 steps x 64 images at 10 img/s, on 11 datasets
    assert "finetune          11 cells  2,053.3 h" in out
    assert "knn·dtd: 0 images extracted" in out  # linear extracted DTD first: k-NN reads the cache
    assert cli.main(argv) == 0 and len(fixed_rates) == 1  # the second plan reads the cached throughput
    assert "measured 2026-12-06, cached" in capsys.readouterr().out
    cached = json.loads((tmp_path / "cache" / "throughput.json").read_text())
    assert [k.split("|")[:4] for k in cached] == [["timm:resnet18", "cpu", estimate.device_name("cpu"), "224px"]]


def test_halving_is_counted_at_its_rungs():
    suite = load_suite("ericsson2021")
    task = next(t for t in suite.tasks("dtd") if t.kind == "finetune")
    assert trained_images(task) == 21 * 5000 * 64
    halving = type(task)(task.dataset, task.protocol, {**task.params, "search": "halving"}, task.kind)
    assert trained_images(halving) == (37_762 + 5000) * 64
    offline = next(t for t in load_suite("offline").tasks("textures") if t.kind == "finetune")
    assert offline.stability == 2 and trained_images(offline) == 3 * 40 * 32  # one pair, no retrain; 2 reruns


def test_an_encoder_without_a_trainable_network_has_no_fine_tune_cells(tmp_path, fixed_rates, capsys):
    assert cli.main(["plan", "--suite", "ericsson2021", "--model", "pixels:8", "--estimate",
                     "--cache-dir", str(tmp_path)]) == 0
    assert "finetune" not in capsys.readouterr().out.split("training")[-1]


def test_a_measured_training_cell_shows_the_estimates_error():
    cell = CellEstimate("finetune", "textures", 64, 0, 1280, 30.0)
    assert error_note(cell, {("finetune", "textures"): 20.0}) == " (measured 20.0 s: estimate +50%)"
    assert error_note(CellEstimate("linear", "digits", 64, 1797, 0, 3.0), {("linear", "digits"): 1.0}) == ""


def test_a_real_measurement_is_positive_and_says_which_device():
    rate = estimate.measure("timm:resnet18", "cpu", 32, 4, 4, Precision.FP32)
    assert rate.extract_per_s > 0 and rate.train_per_s > 0 and "threads" in rate.device


def test_a_feature_cells_protocol_time_is_the_median_of_the_other_encoders_rows():
    import pandas as pd

    rows = pd.DataFrame({"encoder": ["a", "b", "c", "a"], "protocol": ["linear", "linear", "linear", "finetune"],
                         "dataset": ["digits"] * 3 + ["textures"], "seconds": [2.0, 4.0, 9.0, 50.0]})
    cells = [CellEstimate("linear", "digits", 64, 1797, 0, 1.0), CellEstimate("finetune", "textures", 64, 0, 1280, 30.0)]
    new = estimate.with_protocol_times(cells, rows, "d")
    assert [c.total for c in new] == [1.0 + 4.0, 30.0]  # median of 2, 4, 9; fine-tune: the measured throughput
    assert estimate.with_protocol_times(cells, rows, "c")[0].protocol_seconds == 3.0  # its own row left out
    assert estimate.with_protocol_times(cells, None, "d") == cells
