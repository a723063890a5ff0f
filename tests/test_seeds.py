"""Several seeds in one run: which cells repeat per seed, what each seed changes, and how tables combine them."""

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmark.config import load_suite
from benchmark.data.splits import holdout_split
from benchmark.errors import UserError
from benchmark.protocols import FeatureTask, Features, make_protocol
from benchmark.results import ResultsStore, over_seeds
from benchmark.pipeline.runner import Evaluator, RunOptions
from benchmark.vocab import Metric
from cli import main
from tests.conftest import write_suite

PROTOCOLS = {"linear": {"solver": "fast", "num_wd": 6}, "knn": {"k": [5]},
             "fewshot": {"ways": 2, "shots": 5, "queries": 5, "episodes": 20}}


def evaluate(tmp_path, suite, *extra):
    return main(["evaluate", "--suite", str(suite), "--cache-dir", str(tmp_path / "cache"),
                 "--results", str(tmp_path / "runs.sqlite"), "--model", "pixels:8", *extra])


@pytest.fixture
def suite(tmp_path):
    return write_suite(tmp_path / "s.yaml", {"textures": {}}, PROTOCOLS, {"input_size": 16})


def stored(tmp_path) -> pd.DataFrame:
    return ResultsStore(tmp_path / "runs.sqlite").frame()


def test_seeded_protocols_run_once_per_seed_and_the_rest_once(tmp_path, suite, capsys):
    assert evaluate(tmp_path, suite, "--seeds", "0", "1", "2") == 0
    rows = stored(tmp_path)
    seeds = rows.groupby("protocol")["seed"].apply(sorted).to_dict()
    assert seeds == {"fewshot": [0, 1, 2], "knn": [None], "linear": [0, 1, 2]}  # k-NN depends on no seed
    fewshot = rows[rows["protocol"] == "fewshot"]
    assert [p["seed"] for p in fewshot["params"]] == [0, 1, 2]  # the run seed draws the episodes
    assert fewshot["value"].nunique() == 3
    out = capsys.readouterr().out
    assert "σ" in out and "seeds 0, 1, 2 in 2 cells" in out
    assert evaluate(tmp_path, suite, "--seeds", "0", "1", "2") == 0  # everything stored: nothing recomputed
    assert len(stored(tmp_path)) == len(rows) and "0 computed, 7 reused" in capsys.readouterr().out


def test_a_seed_reshuffles_the_hold_out_that_selects_the_linear_probe(tmp_path, suite):
    """Seed s validates on the 20% of train that np.random.seed(s) shuffles first (0 is the reference's)."""
    assert evaluate(tmp_path, suite, "--seeds", "0", "3", "--protocol", "linear") == 0
    rows = stored(tmp_path).set_index("seed")
    evaluator = Evaluator(load_suite(str(suite)), RunOptions(cache_dir=tmp_path / "cache",
                                                             results_path=tmp_path / "other.sqlite"), echo=str)
    splits, _ = evaluator.features(evaluator.planned("pixels:8")[0].pairing)  # the cached features
    train, test = splits["train"], splits["test"]
    for seed in (0, 3):
        fit, val = holdout_split(len(train), 0.2, seed)
        task = FeatureTask(Features(train.x[fit], train.y[fit]), Features(train.x[val], train.y[val]), test,
                           num_classes=3, metric=Metric.TOP1)
        expected = make_protocol("linear", PROTOCOLS["linear"]).evaluate(task)
        assert rows.loc[seed, "value"] == pytest.approx(expected.value)
        assert rows.loc[seed, "chosen"]["C"] == pytest.approx(expected.chosen["C"])
    assert rows.loc[0, "details"]["val_split"] == "holdout20" and rows.loc[0, "split_sizes"]["val"] == len(train) // 5


def test_a_default_run_then_three_seeds_reuses_seed_zero(tmp_path, suite, capsys):
    assert evaluate(tmp_path, suite) == 0
    first = stored(tmp_path)
    assert set(first["seed"]) == {0, None} and len(first) == 3
    capsys.readouterr()
    assert main(["plan", "--suite", str(suite), "--cache-dir", str(tmp_path / "cache"), "--results",
                 str(tmp_path / "runs.sqlite"), "--model", "pixels:8", "--seeds", "0", "1", "2"]) == 0
    plan = capsys.readouterr().out
    assert "evaluate: 4 pending, 3 done" in plan and "linear seed 2" in plan and "knn seed" not in plan
    assert evaluate(tmp_path, suite, "--seeds", "0", "1", "2") == 0
    assert "4 computed, 3 reused" in capsys.readouterr().out  # seeds 1 and 2 of linear and few-shot


def test_tables_show_the_mean_and_std_over_seeds(tmp_path, suite):
    assert evaluate(tmp_path, suite, "--seeds", "0", "1", "2") == 0
    rows, latest = stored(tmp_path), ResultsStore(tmp_path / "runs.sqlite").latest()
    for protocol in ("linear", "fewshot"):
        values = rows[rows["protocol"] == protocol].sort_values("seed")["value"].to_numpy()
        cell = latest.set_index("protocol").loc[protocol]
        assert cell["value"] == pytest.approx(values.mean())
        assert cell["seed_std"] == pytest.approx(values.std(ddof=1))
        assert cell["seed_values"] == dict(zip([0, 1, 2], values)) and cell["seed"] == 0
    assert np.isnan(latest.set_index("protocol").loc["knn", "seed_std"])
    assert main(["leaderboard", "--results", str(tmp_path / "runs.sqlite"), "--out", str(tmp_path / "board")]) == 0
    page = (tmp_path / "board" / "leaderboard.html").read_text()
    linear_std = latest.set_index("protocol").loc["linear", "seed_std"]
    assert f"σ {linear_std:.1f}</span>" in page and "standard deviation over seeds" in page
    wide = pd.read_csv(tmp_path / "board" / "leaderboard_wide.csv", index_col=0)
    assert wide.loc["pixels:8", "seed"] == "0,1,2"  # provenance names every seed behind the values


def row(protocol_version="1.0", seed=0, value=50.0, lr=0.1):
    return {"encoder": "e", "dataset": "d", "protocol": "fewshot", "protocol_kind": "fewshot",
            "protocol_version": protocol_version, "params": {"seed": seed, "lr": lr}, "cache_keys": {"train": "k"},
            "seed": seed, "value": value, "study_key": f"{protocol_version} {lr}"}


def test_only_the_newest_study_seeds_are_combined():
    """An older study of the cell (other parameters) never mixes into the newest one's mean."""
    frame = pd.DataFrame([row(seed=0, value=10.0, lr=0.5), row(seed=1, value=20.0, lr=0.5),  # an older study
                          row(seed=0, value=30.0), row(seed=2, value=40.0), row(seed=2, value=44.0)])  # newest
    combined = over_seeds(frame).iloc[0]
    assert combined["value"] == pytest.approx(37.0)  # 30 (seed 0) and 44 (seed 2's newest)
    assert combined["seed_values"] == {0: 30.0, 2: 44.0} and combined["params"]["lr"] == 0.1
    single = over_seeds(frame.iloc[[0]]).iloc[0]
    assert single["value"] == 10.0 and np.isnan(single["seed_std"])


def test_seeds_in_a_suite_file(tmp_path):
    def suite(**top):
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump({"name": "s", "protocols": {"knn": {}}, "datasets": {"textures": {}}, **top}))
        return path

    assert load_suite(str(suite())).seeds == (0,)
    assert load_suite(str(suite(seed=3))).seeds == (3,)
    assert load_suite(str(suite(seeds=[2, 0, 1]))).seeds == (2, 0, 1)
    for bad in ({"seeds": [0, 0]}, {"seeds": [-1]}, {"seeds": []}, {"seed": 1, "seeds": [1, 2]}):
        with pytest.raises(UserError, match="seed"):
            load_suite(str(suite(**bad)))
    child = tmp_path / "child.yaml"
    child.write_text(yaml.safe_dump({"include": "s.yaml", "seeds": [4, 5]}))
    suite(seed=1)
    assert load_suite(str(child)).seeds == (4, 5)  # the including file's seeds replace the included `seed:`


def test_a_protocol_that_fixes_its_seed_conflicts_with_several_run_seeds(tmp_path):
    path = write_suite(tmp_path / "s.yaml", {"textures": {}}, {"fewshot": {"ways": 2, "seed": 7}})
    with pytest.raises(UserError, match="remove `seed:`"):
        Evaluator(load_suite(str(path)), RunOptions(seeds=(0, 1), results_path=tmp_path / "r.sqlite"))
    assert main(["evaluate", "--suite", str(path), "--model", "pixels:4", "--seeds", "1", "1",
                 "--results", str(tmp_path / "r.sqlite")]) == 2


def test_a_recomputed_column_keeps_its_place_in_the_report(tmp_path, suite, capsys):
    """`--recompute` of the first column rewrites its cells last; the report still prints it first."""
    assert evaluate(tmp_path, suite) == 0
    first = capsys.readouterr().out
    before = stored(tmp_path)
    assert evaluate(tmp_path, suite, "--recompute", "--protocol", "linear") == 0
    again = capsys.readouterr().out
    rows = stored(tmp_path)
    assert len(rows) == len(before) + 1 and rows["protocol"].iloc[-1] == "linear"  # written after k-NN's
    titles = [line for line in again.splitlines() if line.startswith("##")]
    assert titles == [line for line in first.splitlines() if line.startswith("##")] and "linear" in titles[0]
    assert [p for p in ResultsStore(tmp_path / "runs.sqlite").latest()["protocol"]] == ["linear", "knn", "fewshot"]
