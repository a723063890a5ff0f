"""Attentive probing (issue 35): a learned query that reads the right token where pooling cannot."""

import numpy as np
import pytest

from benchmark.errors import UserError
from benchmark.protocols import Features, FeatureTask, make_protocol
from benchmark.vocab import Metric
from tests.conftest import evaluate_one_column

FAST = {"epochs": 30, "lrs": [3e-3], "weight_decays": [1e-4], "batch_size": 32}


def marked_token_task(rng, n=480, classes=4, tokens=6, dim=8) -> FeatureTask:
    """Each image is `tokens` tokens; exactly one carries a marker (dimension 0 = 4) and its class's
    direction; every other token carries a random class's direction (its own class included, so no class
    is told by its absence). The mean of the tokens holds the class barely more than the others, so a
    linear probe on it is near chance; attention to the marker reads the class."""
    directions = np.eye(classes, dim, k=1) * 3.0
    y = rng.integers(0, classes, n)
    x = np.empty((n, dim, tokens, 1), dtype=np.float32)
    for i, label in enumerate(y):
        others = rng.integers(0, classes, tokens - 1)
        content = directions[np.r_[label, others]] + 0.3 * rng.normal(size=(tokens, dim))
        content[0, 0] += 4.0  # the marker
        x[i, :, :, 0] = content[rng.permutation(tokens)].T
    part = lambda rows: Features(x[rows], y[rows])  # noqa: E731
    return FeatureTask(part(slice(0, 320)), part(slice(320, 400)), part(slice(400, n)), classes, Metric.TOP1)


def test_the_attentive_probe_reads_the_marked_token_that_mean_pooling_loses(rng):
    task = marked_token_task(rng)
    attentive = make_protocol("attentive", FAST).evaluate(task)
    pooled = FeatureTask(*(Features(s.x.mean(axis=(2, 3)), s.y) for s in (task.train, task.val, task.test)), 4,
                         Metric.TOP1)
    linear = make_protocol("linear", {"solver": "converged", "num_wd": 6}).evaluate(pooled)
    assert attentive.value >= 95, attentive.value
    assert linear.value <= 60, linear.value  # 4 classes: chance is 25
    assert attentive.details["tokens"] == 6 and attentive.chosen == {"lr": 3e-3, "wd": 1e-4}


def test_the_grid_chooses_on_validation_and_is_seeded(rng):
    task = marked_token_task(rng)
    params = {**FAST, "lrs": [1e-6, 3e-3], "epochs": 10}
    first, again = (make_protocol("attentive", params).evaluate(task) for _ in range(2))
    assert first.chosen["lr"] == 3e-3 and first.details["val_scores"][0] < first.details["val_scores"][1]
    assert first.value == again.value and first.details["val_scores"] == again.details["val_scores"]


def test_heads_that_do_not_divide_the_channels_are_one_message(rng):
    with pytest.raises(UserError, match="heads=3 must divide the features' 8 channels; choose heads from"):
        make_protocol("attentive", {**FAST, "heads": 3}).evaluate(marked_token_task(rng, n=420))


def test_an_attentive_column_runs_on_an_encoders_cached_dense_features(tmp_path, capsys):
    params = {"epochs": 2, "lrs": [1e-3], "weight_decays": [0.0]}
    code, out, rows = evaluate_one_column(tmp_path, capsys, "attentive", params, "textures",
                                          ["bundled:efficientnet_lite0", "pixels:8"], {"input_size": 64, "resize_size": 64})
    assert code == 0, out
    rows = rows.set_index("encoder")
    # Lite0 at 64 px: its stride-16 stage, 4 x 4 positions of 112 channels; raw pixels: their 8 x 8 RGB grid
    assert rows.loc["bundled:efficientnet_lite0", "details"]["tokens"] == 16
    assert rows.loc["pixels:8", "details"]["tokens"] == 64
    assert all(0 <= v <= 100 for v in rows["value"])
