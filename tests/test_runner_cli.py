import numpy as np
import pytest

from benchmark.config import load_suite
from benchmark.errors import UserError
from benchmark.results import ResultsStore
from benchmark.results.table import render, results_table
from cli import main
from tests.conftest import write_suite

PROTOCOLS = {"linear": {"solver": "fast", "num_wd": 8}, "knn": {"k": [5, 20]}}


@pytest.fixture
def tiny_suite(tmp_path):
    return write_suite(tmp_path / "tiny.yaml", {"lfw_faces": {}, "textures": {}}, PROTOCOLS, {"input_size": 32})


def run(tmp_path, suite, *models, extra=()):
    argv = ["evaluate", "--suite", str(suite), "--cache-dir", str(tmp_path / "cache"),
            "--results", str(tmp_path / "runs.sqlite")]
    for model in models:
        argv += ["--model", model]
    return main(argv + list(extra))


def test_evaluate_twice_second_run_uses_the_cache(tmp_path, tiny_suite, capsys):
    assert run(tmp_path, tiny_suite, "pixels:8", "timm:resnet18") == 0
    first = capsys.readouterr().out
    assert "4 hits" not in first and "0 hits, 8 extracted" in first
    assert run(tmp_path, tiny_suite, "pixels:8", "timm:resnet18") == 0
    resumed = capsys.readouterr().out
    assert "(0 computed, 8 reused from the results store)" in resumed and "0 extracted" in resumed
    assert run(tmp_path, tiny_suite, "pixels:8", "timm:resnet18", extra=["--recompute"]) == 0
    second = capsys.readouterr().out
    assert "8 hits, 0 extracted (nothing extracted: cache used)" in second
    assert "extracted 2 split(s)" not in second and "(8 computed, 0 reused" in second
    frame = ResultsStore(tmp_path / "runs.sqlite").frame()
    assert len(frame) == 16 and set(frame["protocol"]) == {"linear", "knn"}
    row = frame.iloc[-1]
    assert row["random_init"] == 1 and "[random init]" in row["encoder"] and row["seed"] is None
    assert row["preprocessing"]["input_size"] == 32 and row["package_version"] and row["code_revision"]
    assert row["split_sizes"] == {"train": 377, "val": 94, "test": 204}  # textures: 20% hold-out of 471
    # the same numbers both times: features and solvers are deterministic
    firsts, seconds = frame.iloc[:8]["value"].to_numpy(), frame.iloc[8:]["value"].to_numpy()
    np.testing.assert_array_equal(firsts, seconds)


def test_changing_preprocessing_makes_new_cache_entries(tmp_path, tiny_suite, capsys):
    run(tmp_path, tiny_suite, "pixels:8")
    capsys.readouterr()
    other = write_suite(tmp_path / "other.yaml", {"lfw_faces": {}}, PROTOCOLS, {"input_size": 24})
    run(tmp_path, other, "pixels:8")
    assert "0 hits, 2 extracted" in capsys.readouterr().out


def test_table_layout(tmp_path, tiny_suite, capsys):
    run(tmp_path, tiny_suite, "pixels:8", "timm:resnet18")
    capsys.readouterr()
    table = results_table(ResultsStore(tmp_path / "runs.sqlite").latest())
    assert list(table.index) == ["pixels:8", "timm:resnet18 [random init]"]
    assert list(table.columns) == [("linear", "lfw_faces"), ("linear", "textures"), ("knn", "lfw_faces"),
                                   ("knn", "textures")]
    assert table[("linear", "lfw_faces")].min() > 80 and table.to_numpy().max() <= 100
    markdown = render(table)
    assert markdown.splitlines()[0].split("|")[2].strip() == "linear · lfw_faces"
    assert render(table, "csv").splitlines()[:2] == ["protocol,linear,linear,knn,knn",
                                                   "dataset,lfw_faces,textures,lfw_faces,textures"]
    assert "\\multicolumn" in render(table, "latex")
    assert main(["table", "--results", str(tmp_path / "runs.sqlite"), "--format", "csv"]) == 0


def test_extract_writes_an_npz_anyone_can_check(tmp_path, capsys):
    out = tmp_path / "f.npz"
    assert main(["extract", "--model", "pixels:4", "--dataset", "digits", "--split", "test", "--cache-dir",
                 str(tmp_path / "cache"), "--out", str(out)]) == 0
    saved = np.load(out)
    assert saved["features"].shape == (359, 48) and saved["labels"].shape == (359,)


def test_a_failing_dataset_does_not_lose_the_others(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TRANSFERBENCH_DATA", raising=False)
    suite = write_suite(tmp_path / "s.yaml", {"cifar10": {}, "lfw_faces": {}}, {"knn": {}}, {"input_size": 16})
    assert run(tmp_path, suite, "pixels:4") == 1
    captured = capsys.readouterr()
    assert "Dataset 'cifar10' not found" in captured.err and "--data-root" in captured.err
    assert list(ResultsStore(tmp_path / "runs.sqlite").frame()["dataset"]) == ["lfw_faces"]


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--model", "pixels:4", "--protocol", "knnn"], "Did you mean 'knn'"),
    (["evaluate", "--model", "resnet50"], "SOURCE:NAME"),
    (["evaluate", "--model", "pixels:4", "--suite", "ofline"], "Did you mean 'offline'"),
    (["table", "--results", "/nonexistent/runs.sqlite"], "run `transferbench evaluate` first"),
])
def test_user_errors_exit_2_with_a_fix(argv, message, capsys, tmp_path):
    extra = ["--cache-dir", str(tmp_path), "--results", str(tmp_path / "r.sqlite")] if argv[0] == "evaluate" else []
    assert main(argv + extra) == 2
    assert message in capsys.readouterr().err


def test_suite_unknown_key_and_include(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\nprotocols: {knn: {k: [5]}}\ndatasets: {digits: {}}\n")
    (tmp_path / "child.yaml").write_text("include: base.yaml\nname: child\nprotocols: {knn: {temperature: 0.1}}\n"
                                         "overrides: [{dataset: digits, protocol: knn, params: {k: [7]}}]\n")
    suite = load_suite(str(tmp_path / "child.yaml"))
    assert suite.name == "child" and list(suite.datasets) == ["digits"]
    assert suite.tasks("digits")[0].params == {"k": [7], "temperature": 0.1}
    (tmp_path / "bad.yaml").write_text("name: bad\nprotocls: {knn: {}}\n")
    with pytest.raises(UserError, match="Did you mean 'protocols'"):
        load_suite(str(tmp_path / "bad.yaml"))


def test_offline_suite_lists_the_real_datasets():
    suite = load_suite("offline")
    assert list(suite.datasets) == ["fashion_mnist", "mnist5k", "digits", "lfw_faces", "textures", "fmnist_mosaic"]
    assert set(suite.protocols) == {"linear", "knn", "fewshot", "calibration", "zeroshot", "finetune", "segmentation",
                                    "retrieval", "lowshot", "rankme", "alpha_req", "twonn"}
    assert {t.kind for t in suite.tasks("digits")} >= {"quality", "retrieval"}
    assert [t.params for t in suite.tasks("fashion_mnist") if t.kind == "lowshot"] == [{"wd_start": -2, "num_wd": 8}]
    assert [t.protocol for t in suite.tasks("fmnist_mosaic")] == ["segmentation"]


def test_a_store_from_before_resumable_results_is_migrated(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, "
                   "suite TEXT NOT NULL, encoder TEXT NOT NULL, encoder_spec TEXT NOT NULL, encoder_identity TEXT NOT NULL,"
                   "random_init INTEGER NOT NULL, dataset TEXT NOT NULL, protocol TEXT NOT NULL, protocol_version TEXT "
                   "NOT NULL, metric TEXT NOT NULL, value REAL NOT NULL, params TEXT NOT NULL, chosen TEXT NOT NULL, "
                   "details TEXT NOT NULL, preprocessing TEXT NOT NULL, split_sizes TEXT NOT NULL, cache_keys TEXT NOT "
                   "NULL, seed INTEGER NOT NULL, package_version TEXT NOT NULL, code_revision TEXT NOT NULL, "
                   "seconds REAL NOT NULL)")
        db.execute("INSERT INTO results VALUES (1, 0, 's', 'e', 'pixels:4', '{}', 0, 'digits', 'knn', '1.0', 'top1', "
                   "90.5, '{}', '{}', '{}', '{}', '{}', '{}', 0, '0.1.0', 'abc', 1.0)")
    store = ResultsStore(path)
    assert store.frame()["value"].tolist() == [90.5] and store.find("nothing") is None


def test_a_data_load_that_fails_is_not_repeated_for_each_protocol(tmp_path, capsys, monkeypatch):
    from benchmark.pipeline import runner

    calls = []
    original = runner.Evaluator.features

    def failing(self, *args):
        calls.append(args[1])
        raise UserError("labels broken")

    monkeypatch.setattr(runner.Evaluator, "features", failing)
    suite = write_suite(tmp_path / "s.yaml", {"lfw_faces": {}}, {"knn": {}, "linear": {"solver": "fast"}},
                        {"input_size": 16})
    assert run(tmp_path, suite, "pixels:4") == 1
    assert calls == ["pooled"] and capsys.readouterr().err.count("labels broken") == 2
    monkeypatch.setattr(runner.Evaluator, "features", original)
