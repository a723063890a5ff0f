"""Revisited Oxford / Paris: the mAP against a transcription of revisitop's compute_map, and the loader
and protocol on a miniature in the official layout."""

import numpy as np
import pytest

from benchmark.metrics import Relevance, revisited_map
from tests.miniatures import write_revisitop


def revisitop_map(similarity, gnd, protocol):
    """revisitop's evaluate.py, one query at a time: ranks of positives and junk in the full ranking,
    positives moved up by the junk ranked before them, trapezoidal AP over the positives."""
    aps = []
    for scores, query in zip(similarity, gnd):
        ok = {"easy": query["easy"], "medium": query["easy"] + query["hard"], "hard": query["hard"]}[protocol]
        junk = {"easy": query["junk"] + query["hard"], "medium": query["junk"],
                "hard": query["junk"] + query["easy"]}[protocol]
        if not ok:
            continue
        ranking = list(np.argsort(-scores, kind="stable"))
        pos = sorted(ranking.index(i) for i in ok)
        junk_ranks = sorted(ranking.index(i) for i in junk)
        adjusted = [p - sum(1 for j in junk_ranks if j < p) for p in pos]
        ap = 0.0
        for j, rank in enumerate(adjusted):
            precision_0 = 1.0 if rank == 0 else j / rank
            ap += (precision_0 + (j + 1) / (rank + 1)) / (2 * len(ok))
        aps.append(ap)
    return 100 * np.mean(aps)


def test_revisited_map_matches_revisitop_on_a_hand_made_case():
    rng = np.random.default_rng(0)
    similarity = rng.normal(size=(4, 30))
    gnd = [{"easy": [0, 5, 9], "hard": [3, 12], "junk": [1, 2, 7]},
           {"easy": [4], "hard": [], "junk": [0, 3]},  # no hard positive: left out of Hard
           {"easy": [], "hard": [20, 21, 22], "junk": []},  # no easy positive: left out of Easy
           {"easy": [10, 11], "hard": [29], "junk": [12, 13, 14, 15]}]
    relevance = np.zeros((4, 30), np.int8)
    for row, query in zip(relevance, gnd):
        row[query["easy"]], row[query["hard"]], row[query["junk"]] = Relevance.EASY, Relevance.HARD, Relevance.JUNK
    for protocol in ("easy", "medium", "hard"):
        assert revisited_map(relevance, similarity, protocol) == pytest.approx(revisitop_map(similarity, gnd, protocol))
    perfect = np.where(relevance == Relevance.NEGATIVE, 0.0, 1.0) + np.where(relevance == Relevance.JUNK, 5.0, 0.0)
    assert revisited_map(relevance, perfect, "medium") == pytest.approx(100.0)  # junk on top is ignored


def test_revisitop_layout_loads_and_the_protocol_ranks_the_database_in_its_order(tmp_path):
    from benchmark.config import load_suite
    from benchmark.data import DATASETS, load_split
    from benchmark.results import ResultsStore
    from benchmark.pipeline.runner import RunOptions, evaluate
    from tests.conftest import write_suite

    root = write_revisitop(tmp_path / "data" / "roxford5k")
    spec = DATASETS.get("roxford5k")
    database, queries = load_split(spec, "train", root), load_split(spec, "test", root)
    assert len(database) == 15 and len(queries) == 3 and queries.labels.shape == (3, 15)
    assert queries.images[0].size == (32, 24)  # cropped to its box (x1, y1, x2, y2) = (8, 8, 40, 32)
    assert sorted(np.flatnonzero(queries.labels[1] == Relevance.EASY)) == [4, 5]
    suite = load_suite(str(write_suite(tmp_path / "s.yaml", {"roxford5k": {}}, {"instance_retrieval": {}, "knn": {}},
                                       {"input_size": 16})))
    options = RunOptions(cache_dir=tmp_path / "c", results_path=tmp_path / "r.sqlite", data_root=tmp_path / "data")
    report = evaluate(["pixels:4"], suite, options, echo=lambda _: None)
    row = ResultsStore(tmp_path / "r.sqlite").latest().set_index("protocol").loc["instance_retrieval"]
    # each landmark's colour finds its own images first; a wrong database order would scatter the hits
    assert row["details"]["map_easy"] == row["details"]["map_medium"] == row["details"]["map_hard"] == 100.0
    assert row["split_sizes"]["test"] == 3 and any("knn" in s for s in report.skipped)  # k-NN has no labels here
