"""Label-free quality (RankMe, alpha-ReQ, TwoNN) on spectra and shapes with known answers, and class
retrieval (recall@k, mAP@R) against a loop transcription of the definitions on a hand-made case."""

import numpy as np
import pytest

from benchmark.protocols.quality import alpha_req, rankme, twonn_dimension
from benchmark.protocols.retrieval import retrieval_scores


def orthonormal(rng, n, d, centred=False):
    x = rng.normal(size=(n, d))
    if centred:
        x -= x.mean(0)
    return np.linalg.qr(x)[0]


def test_rankme_counts_the_dimensions_in_use_and_follows_the_paper_formula():
    rng = np.random.default_rng(0)
    u, v = orthonormal(rng, 500, 64), orthonormal(rng, 64, 64)
    for k in (1, 7, 32):
        singular = np.r_[np.ones(k), np.zeros(64 - k)]
        assert rankme(u @ np.diag(singular) @ v.T) == pytest.approx(k, rel=1e-3)  # eps adds ~1e-4
    z = rng.normal(size=(300, 40)) @ np.diag(np.linspace(3, 0.1, 40))
    sigma = np.linalg.svd(z, compute_uv=False)
    p = sigma / np.abs(sigma).sum() + 1e-7  # Garrido et al. 2023, eq. 1
    assert rankme(z) == pytest.approx(np.exp(-np.sum(p * np.log(p))), rel=1e-12)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_alpha_req_recovers_a_power_law_eigenspectrum(alpha):
    rng = np.random.default_rng(1)
    n, d = 1000, 50
    eigenvalues = np.arange(1, d + 1, dtype=float) ** -alpha
    x = orthonormal(rng, n, d, centred=True) @ np.diag(np.sqrt(eigenvalues * (n - 1))) @ orthonormal(rng, d, d).T
    assert np.allclose(np.linalg.eigvalsh(np.cov(x.T))[::-1], eigenvalues)  # the construction is right
    assert alpha_req(x) == pytest.approx(alpha, rel=1e-6)


def test_twonn_finds_the_dimension_of_a_flat_manifold_in_a_larger_space():
    rng = np.random.default_rng(2)
    for d in (2, 5):
        points = rng.uniform(size=(2000, d)) @ orthonormal(rng, 30, d).T  # a d-cube inside 30 dimensions
        assert twonn_dimension(points) == pytest.approx(d, rel=0.12)
    duplicated = np.repeat(rng.normal(size=(100, 3)), 2, axis=0)  # r1 = 0 everywhere: nothing to estimate
    assert np.isnan(twonn_dimension(duplicated))


def direct_retrieval(x, y, ks):
    """The definitions, one query at a time, with a full sort."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    rankings = []
    for q in range(len(x)):
        others = [i for i in range(len(x)) if i != q]
        rankings.append([y[i] == y[q] for i in sorted(others, key=lambda i: -float(x[q] @ x[i]))])
    return definition_scores(rankings, ks)


def definition_scores(rankings, ks):
    """recall@k and mAP@R from each query's full ranking (True where relevant); queries with no relevant
    item are left out."""
    recalls, aps = {k: [] for k in ks}, []
    for relevant in rankings:
        r = sum(relevant)
        if r == 0:
            continue
        for k in ks:
            recalls[k].append(any(relevant[:k]))
        aps.append(sum(sum(relevant[:i + 1]) / (i + 1) for i in range(r) if relevant[i]) / r)
    return {f"recall@{k}": 100 * np.mean(v) for k, v in recalls.items()} | {"map@r": 100 * np.mean(aps)}


def test_class_retrieval_matches_a_direct_transcription():
    rng = np.random.default_rng(3)
    angles = rng.permutation(np.linspace(0, 2 * np.pi, 40, endpoint=False))
    x = np.c_[np.cos(angles), np.sin(angles), 0.3 * rng.normal(size=40)]  # distinct similarities, no ties
    y = (angles // (np.pi / 2)).astype(int)
    y[0] = 4  # a class of one: no relevant item, left out
    scores = retrieval_scores(x, y, (1, 5, 10))
    direct = direct_retrieval(x, y, (1, 5, 10))
    for key, value in direct.items():
        assert scores[key] == pytest.approx(value, abs=1e-9), key
    assert scores["queries"] == 39 and scores["top1_relevant"].mean() * 100 == pytest.approx(direct["recall@1"])
    assert 0 < scores["map@r"] < scores["recall@10"] <= 100


def direct_gallery_retrieval(queries, labels, gallery, gallery_labels, ks):
    """The definitions with a separate database, one query at a time, with a full sort."""
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    queries, gallery = unit(queries), unit(gallery)
    return definition_scores([[gallery_labels[i] == label for i in np.argsort(-(gallery @ q), kind="stable")]
                              for q, label in zip(queries, labels)], ks)


def test_retrieval_against_a_separate_gallery_streams_it_and_matches_the_definitions(monkeypatch):
    from benchmark.protocols import Features, FeatureTask, make_protocol, retrieval

    rng = np.random.default_rng(4)
    gallery_y, test_y = rng.integers(0, 5, 300), rng.integers(0, 6, 60)  # class 5: in no gallery, left out
    centres = rng.normal(size=(6, 8))
    gallery, queries = (centres[y] + 1.5 * rng.normal(size=(len(y), 8)) for y in (gallery_y, test_y))
    direct = direct_gallery_retrieval(queries, test_y, gallery, gallery_y, (1, 5, 10))
    monkeypatch.setattr(retrieval, "GALLERY_CHUNK", 37)  # the gallery in 9 chunks, merged
    monkeypatch.setattr(retrieval, "GALLERY_BLOCK_BYTES", 24 * 90 * 16)  # queries in blocks of 16
    part = lambda x, y: Features(x.astype(np.float32), y)  # noqa: E731
    task = FeatureTask(part(gallery[:240], gallery_y[:240]), part(gallery[240:], gallery_y[240:]),
                       part(queries, test_y), 6, "top1")
    result = make_protocol("retrieval", {"database": "train"}).evaluate(task)
    for key, value in direct.items():
        assert result.details[key] == pytest.approx(value, abs=1e-6), key
    assert result.details["queries"] == int((test_y < 5).sum()) and result.details["database"] == "train"
    assert 20 < result.details["map@r"] < result.details["recall@10"] <= 100
    itself = make_protocol("retrieval").evaluate(task)  # the default: test images search each other
    assert itself.details["database"] == "test" and itself.details["queries"] == 60


def test_quality_and_retrieval_columns_run_in_a_suite(tmp_path):
    from benchmark.config import load_suite
    from benchmark.results import ResultsStore
    from benchmark.pipeline.runner import RunOptions, evaluate
    from tests.conftest import write_suite

    suite = load_suite(str(write_suite(tmp_path / "s.yaml", {"digits": {}}, {
        "retrieval": {}, "rankme": {"protocol": "quality", "measure": "rankme", "max_samples": 500},
        "twonn": {"protocol": "quality", "measure": "twonn", "split": "test"}})))
    evaluate(["pixels:8"], suite, RunOptions(cache_dir=tmp_path / "c", results_path=tmp_path / "r.sqlite"),
             echo=lambda _: None)
    rows = ResultsStore(tmp_path / "r.sqlite").latest().set_index("protocol")
    assert rows.loc["rankme", "details"]["samples"] == 500 and rows.loc["rankme", "metric"] == "rankme"
    assert rows.loc["twonn", "details"]["split"] == "test" and rows.loc["twonn", "details"]["samples"] == 359
    assert 1 < rows.loc["rankme", "value"] < 192 and 1 < rows.loc["twonn", "value"] < 192
    assert 80 < rows.loc["retrieval", "value"] <= 100  # pixels retrieve digits well
    import sklearn

    environment = rows.loc["retrieval", "environment"]  # every row: the library versions behind its number
    assert environment["numpy"] == np.__version__ and environment["scikit-learn"] == sklearn.__version__
    assert {"python", "scipy", "torch", "faiss-cpu", "timm"} <= set(environment)


def test_a_subset_of_data_without_classes_is_refused_with_the_fix(tmp_path):
    from benchmark.errors import UserError
    from benchmark.pipeline.inputs import plan_dataset

    with pytest.raises(UserError, match="remove test_subset from its suite entry"):
        plan_dataset("fmnist_mosaic", {"test_subset": 100}, None)
    assert plan_dataset("digits", {"test_subset": 100}, None).test_subset == 100
