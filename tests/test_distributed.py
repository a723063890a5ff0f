"""Scale-out: rank-sharded cache entries, torchrun with gloo on CPU, submitit jobs, the task plan."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.cache import FeatureCache, read_entry
from benchmark.identity import FeatureKey
from tests.conftest import test_key
from benchmark.config import load_suite
from benchmark.pipeline.executor import ExecutorOptions, run_as_jobs
from benchmark.results import ResultsStore
from benchmark.pipeline.runner import Evaluator, RunOptions, evaluate
from tests.conftest import write_suite

REPO = Path(__file__).resolve().parents[1]


def test_shards_are_read_back_as_one_array_in_dataset_order(tmp_path):
    cache, key = FeatureCache(tmp_path), test_key("sharded")
    x = np.arange(10, dtype=np.float32)[:, None] * [1.0, -1.0]
    # DistributedSampler order for 10 items on 4 ranks: rank r holds r, r+4, r+8, padded with the first items
    shards = [np.array([0, 4, 8]), np.array([1, 5, 9]), np.array([2, 6, 0]), np.array([3, 7, 1])]
    for rank, index in enumerate(shards[:3]):
        cache.save_shard(key, rank, 4, {"features": x[index], "labels": index % 3, "index": index})
        assert cache.load(key) is None and not cache.contains(key)  # incomplete until every rank wrote
    cache.save_shard(key, 3, 4, {"features": x[shards[3]], "labels": shards[3] % 3, "index": shards[3]})
    joined = cache.load(key)
    assert cache.contains(key) and set(joined) == {"features", "labels"}
    np.testing.assert_array_equal(joined["features"], x)
    np.testing.assert_array_equal(joined["labels"], np.arange(10) % 3)


def tiny_suite(tmp_path):
    return write_suite(tmp_path / "tiny.yaml", {"digits": {"protocols": ["linear", "knn"]},
                                                "lfw_faces": {"protocols": ["knn", "finetune"]}},
                       # linear: C <= 1, where every fit converges. At larger C these random-init features
                       # are near-separable, a fit stops at max_iter on a flat valley, and a 1e-6 difference
                       # in the features (sharded batches) can move the chosen C (measured: 59.33 vs 58.77).
                       {"linear": {"solver": "fast", "wd_start": 0, "num_wd": 11}, "knn": {"k": [5, 20]},
                        "finetune": {"steps": 3, "batch_size": 8, "lrs": [0.01], "regularisation": [0.0]}},
                       preprocessing={"input_size": 16})


def entries(cache_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """Every complete cache entry (plain or sharded), by digest."""
    import json

    cache, found = FeatureCache(cache_dir), {}
    for manifest in (cache_dir / "features").glob("*/*/manifest.json"):
        key = FeatureKey.from_fields(json.loads(manifest.read_text())["key"])
        found[key.digest] = read_entry(manifest.parent, key)
    for shards in (cache_dir / "features").glob("*/*.shards"):
        manifest = next(shards.glob("*/manifest.json"))
        key = FeatureKey.from_fields(json.loads(manifest.read_text())["key"])
        found[key.digest] = cache.load(key)
    return found


def values(store_path: Path) -> dict[tuple[str, str, str], float]:
    frame = ResultsStore(store_path).latest()
    return {(r.encoder, r.dataset, r.protocol): r.value for r in frame.itertuples()}


def test_torchrun_two_ranks_write_shards_equal_to_the_single_process_cache(tmp_path):
    suite_path = tiny_suite(tmp_path)
    common = ["evaluate", "--suite", str(suite_path), "--model", "timm:resnet18"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run([*torchrun, str(REPO / "cli.py"), *common, "--cache-dir", str(tmp_path / "dist"),
                           "--results", str(tmp_path / "dist.sqlite")], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    suite = load_suite(str(suite_path))
    report = evaluate(["timm:resnet18"], suite, RunOptions(cache_dir=tmp_path / "single",
                                                           results_path=tmp_path / "single.sqlite"), echo=lambda _: None)
    assert not report.failures
    sharded, single = entries(tmp_path / "dist"), entries(tmp_path / "single")
    assert list((tmp_path / "dist" / "features").glob("*/*.shards/00001-of-00002"))  # rank 1 wrote its shard
    assert set(sharded) == set(single) and len(single) == 4  # digits and faces, train and test
    for digest, arrays in single.items():
        np.testing.assert_array_equal(sharded[digest]["labels"], arrays["labels"])
        np.testing.assert_allclose(sharded[digest]["features"], arrays["features"], rtol=1e-5, atol=1e-5)
    dist_values, single_values = values(tmp_path / "dist.sqlite"), values(tmp_path / "single.sqlite")
    assert set(dist_values) == set(single_values) and len(single_values) == 4  # 3 feature cells + fine-tuning
    for cell in [c for c in single_values if c[2] != "finetune"]:  # DDP draws other batches than one process
        assert dist_values[cell] == pytest.approx(single_values[cell], abs=1e-6)


def test_submitit_local_jobs_give_the_in_process_results(tmp_path):
    suite_path = write_suite(tmp_path / "jobs.yaml", {"digits": {}},
                             {"linear": {"solver": "fast"}, "knn": {"k": [5, 20]}}, preprocessing={"input_size": 16})
    suite = load_suite(str(suite_path))
    jobs_options = RunOptions(cache_dir=tmp_path / "jobs-cache", results_path=tmp_path / "jobs.sqlite")
    report = run_as_jobs(["pixels:8"], suite, jobs_options, ExecutorOptions(folder=tmp_path / "submitit"),
                         echo=lambda _: None)
    assert not report.failures and report.cache_misses == 2 and len(report.rows) == 2
    in_process = RunOptions(cache_dir=tmp_path / "cache", results_path=tmp_path / "runs.sqlite")
    evaluate(["pixels:8"], suite, in_process, echo=lambda _: None)
    assert values(tmp_path / "jobs.sqlite") == values(tmp_path / "runs.sqlite")
    assert len(list((tmp_path / "submitit").glob("*_result.pkl"))) == 2  # an extraction job, then an evaluation job


def test_plan_lists_pending_tasks_and_marks_them_done_after_a_run(tmp_path):
    suite = load_suite(str(write_suite(tmp_path / "plan.yaml", {"digits": {}},
                                       {"linear": {"solver": "fast"}, "knn": {"k": [5]}})))
    options = RunOptions(cache_dir=tmp_path / "cache", results_path=tmp_path / "runs.sqlite")
    before = Evaluator(suite, options).plan(["pixels:8"])
    assert [(t.stage, t.what, t.done) for t in before] == [
        ("extract", "train pooled", False), ("extract", "test pooled", False),
        ("evaluate", "linear", False), ("evaluate", "knn", False)]
    Evaluator(suite, options, echo=lambda _: None).extract("pixels:8")
    assert [t.done for t in Evaluator(suite, options).plan(["pixels:8"])] == [True, True, False, False]
    evaluate(["pixels:8"], suite, options, echo=lambda _: None)
    after = Evaluator(suite, options).plan(["pixels:8"])  # results stored: no extraction is needed any more
    assert [(t.stage, t.what, t.done) for t in after] == [("evaluate", "linear", True), ("evaluate", "knn", True)]


FAILING_RANK_PLUGIN = '''
import os
from torch import nn
from benchmark.encoders import ENCODER_SOURCES, load_encoder


class FailsOnRankOne(nn.Module):
    def forward(self, images):
        if os.environ.get("RANK") == "1":
            raise RuntimeError("a broken batch (simulated)")
        return images.mean((2, 3))


@ENCODER_SOURCES.register("failrank")
def build(name, weights):
    encoder = load_encoder("pixels:2")
    encoder.model, encoder.identity = FailsOnRankOne(), {"source": "failrank"}
    return encoder
'''


def test_a_rank_whose_extraction_fails_does_not_leave_the_others_waiting(tmp_path):
    plugin = tmp_path / "failrank.py"
    plugin.write_text(FAILING_RANK_PLUGIN)
    suite = write_suite(tmp_path / "s.yaml", {"digits": {}}, {"knn": {}}, preprocessing={"input_size": 8})
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run([*torchrun, str(REPO / "cli.py"), "evaluate", "--suite", str(suite), "--model", "failrank:x",
                           "--plugin", str(plugin), "--cache-dir", str(tmp_path / "c"), "--results",
                           str(tmp_path / "r.sqlite")], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "rank 1: RuntimeError: a broken batch (simulated)" in done.stdout + done.stderr


def test_the_process_group_waits_a_day_not_nccls_ten_minutes(monkeypatch):
    """Ranks other than 0 wait at the next collective while rank 0 runs the feature protocols."""
    import datetime

    from benchmark import distributed

    seen = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend, timeout: seen.update(
        backend=backend, timeout=timeout))
    distributed.init_from_env("cpu")
    assert seen == {"backend": "gloo", "timeout": datetime.timedelta(days=1)}
    monkeypatch.setenv("TRANSFERBENCH_DIST_TIMEOUT_MIN", "90")
    distributed.init_from_env("cpu")
    assert seen["timeout"] == datetime.timedelta(minutes=90)


def test_torchrun_shares_the_grid_runs_out_and_chooses_as_one_process_does(tmp_path):
    """`parallel: runs`: each (lr, w) run trained whole on one rank, scores gathered; the grid's validation
    scores and choice equal one process's (both at one thread: torchrun sets OMP_NUM_THREADS=1)."""
    suite_path = write_suite(tmp_path / "ft.yaml", {"lfw_faces": {"protocols": ["finetune"]}},
                             {"finetune": {"steps": 4, "batch_size": 8, "lrs": [0.1, 0.01, 0.001],
                                           "regularisation": [0.0, 0.001], "parallel": "runs"}},
                             preprocessing={"input_size": 16})
    common = [str(REPO / "cli.py"), "evaluate", "--suite", str(suite_path), "--model", "timm:resnet18"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, launcher in (("dist", torchrun), ("single", [sys.executable])):
        done = subprocess.run([*launcher, *common, "--cache-dir", str(tmp_path / name), "--results",
                               str(tmp_path / f"{name}.sqlite")], capture_output=True, text=True, timeout=300,
                              cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {name: ResultsStore(tmp_path / f"{name}.sqlite").latest().iloc[0] for name in ("dist", "single")}
    assert rows["dist"]["chosen"] == rows["single"]["chosen"]
    assert rows["dist"]["details"]["grid"] == rows["single"]["details"]["grid"]  # all 6 runs, each on one rank
    assert len(rows["single"]["details"]["grid"]) == 6
    assert (rows["dist"]["details"]["search_ranks"], rows["single"]["details"]["search_ranks"]) == (2, 1)
