"""The low-shot linear probe: seeded k-per-class draws, C chosen on validation as the linear protocol
chooses it, the probe refit on the k-shot set and scored on test."""

import numpy as np
import pytest

from benchmark.errors import UserError
from benchmark.protocols import Features, FeatureTask, make_protocol
from benchmark.protocols.lowshot import draw_shots
from benchmark.vocab import Metric


@pytest.fixture(scope="module")
def task(digits_features):
    (x, y), (xt, yt) = digits_features["train"], digits_features["test"]
    return FeatureTask(Features(x[:1000], y[:1000]), Features(x[1000:], y[1000:]), Features(xt, yt), 10,
                       Metric.TOP1)


def test_each_draw_is_the_linear_probe_on_its_k_shot_train_set(task):
    # moderate C: on 10 separable rows, C up to 1e6 makes the optimum ill-conditioned enough that an array's
    # memory alignment (numpy's SIMD peeling) moves a test prediction; 0.01-100 is well conditioned
    params = {"solver": "converged", "wd_start": -2.0, "wd_stop": 2.0, "num_wd": 5}
    result = make_protocol("lowshot", {**params, "shots": [1, 4], "draws": 2, "seed": 3}).evaluate(task)
    curve = result.details["curve"]
    for k in ("1", "4"):
        for draw, positions in enumerate(curve[k]["train_positions"]):
            assert len(positions) == 10 * int(k) and np.bincount(task.train.y[positions]).tolist() == [int(k)] * 10
            shots = FeatureTask(Features(task.train.x[positions], task.train.y[positions]), task.val, task.test, 10,
                                Metric.TOP1)
            linear = make_protocol("linear", params)  # the linear probe, refit on train alone
            from benchmark.protocols._linear_sweep import linear_sweep, refit_logits
            from benchmark.metrics import score
            sweep = linear_sweep(shots, linear.params)
            expected = score(Metric.TOP1, task.test.y, refit_logits(shots, linear.params, "test", on="train"))
            assert curve[k]["C"][draw] == float(sweep.best_C)
            assert curve[k]["scores"][draw] == pytest.approx(expected, abs=100 / len(task.test) + 1e-9)  # <= 1 image
    assert result.value == pytest.approx(np.mean(curve["4"]["scores"])) and result.chosen == {"shots": 4}
    assert curve["4"]["mean"] > curve["1"]["mean"]  # 4 labels a class beat 1 on digits
    assert result.per_example.episode_accuracies == tuple(round(s, 4) for s in curve["4"]["scores"])


def test_draws_are_seeded_and_distinct():
    labels = np.repeat(np.arange(3), 10)
    first = draw_shots(labels, 4, 3, np.random.default_rng([0, 4, 0]))
    again = draw_shots(labels, 4, 3, np.random.default_rng([0, 4, 0]))
    other = draw_shots(labels, 4, 3, np.random.default_rng([0, 4, 1]))
    assert first.tolist() == again.tolist() and first.tolist() != other.tolist()
    assert len(set(first.tolist())) == 12 and np.bincount(labels[first]).tolist() == [4, 4, 4]


def test_more_shots_than_a_class_has_is_one_message():
    with pytest.raises(UserError, match="3 shots per class, but class"):
        draw_shots(np.array([0, 0, 0, 1, 1]), 3, 2, np.random.default_rng(0))
    with pytest.raises(UserError, match="headline=3 must be one of shots"):
        make_protocol("lowshot", {"shots": [1, 2], "headline": 3})


def test_the_report_says_how_many_shots_zero_shot_is_worth(tmp_path):
    import pandas as pd

    from benchmark.results.lowshot import lowshot_lines, matching_shots, plot_lowshot

    curve = {"1": {"mean": 40.0, "ci95": 2.0}, "2": {"mean": 55.0, "ci95": 2.5}, "4": {"mean": 70.0, "ci95": 1.5},
             "8": {"mean": 80.0, "ci95": 1.0}}
    rows = pd.DataFrame([
        {"encoder": "clip", "dataset": "pets", "protocol": "lowshot", "protocol_kind": "lowshot", "value": 80.0,
         "metric": "top1", "details": {"curve": curve}},
        {"encoder": "clip", "dataset": "pets", "protocol": "zeroshot", "protocol_kind": "zeroshot", "value": 62.0,
         "metric": "top1", "details": {}},
        {"encoder": "clip", "dataset": "dtd", "protocol": "lowshot", "protocol_kind": "lowshot", "value": 50.0,
         "metric": "top1", "details": {"curve": {"1": {"mean": 30.0, "ci95": 3.0}, "2": {"mean": 50.0, "ci95": 3.0}}}},
        {"encoder": "clip", "dataset": "dtd", "protocol": "zeroshot", "protocol_kind": "zeroshot", "value": 55.0,
         "metric": "top1", "details": {}}])
    # 62 lies 7/15 of the way from 2 shots (55) to 4 shots (70) on log2(shots): 2 ** (1 + 7/15)
    assert matching_shots([(1, 40.0), (2, 55.0), (4, 70.0), (8, 80.0)], 62.0) == pytest.approx(2 ** (1 + 7 / 15))
    lines = lowshot_lines(rows)
    assert lines[0] == ("clip · pets: 1: 40.0 ± 2.0, 2: 55.0 ± 2.5, 4: 70.0 ± 1.5, 8: 80.0 ± 1.0; zero-shot 62.0 is "
                        "worth about 2.8 shots per class")
    assert lines[1].endswith("zero-shot 55.0 is above the whole curve (more than 2 shots)")
    assert plot_lowshot(rows, tmp_path / "lowshot.png").stat().st_size > 10_000
