import numpy as np
import pytest

from benchmark.data.splits import holdout_split
from benchmark.errors import UserError
from benchmark.metrics import mean_per_class, score, voc_map
from benchmark.protocols import Features, FeatureTask, make_protocol
from benchmark.protocols._logreg import SklearnLogReg, TorchLogReg, sklearn_objective
from benchmark.protocols._linear_sweep import c_grid


def task_data(digits_features, metric="top1"):
    (x, y), (xt, yt) = digits_features["train"], digits_features["test"]
    train_idx, val_idx = holdout_split(len(y))
    return FeatureTask(Features(x[train_idx], y[train_idx]), Features(x[val_idx], y[val_idx]), Features(xt, yt), 10,
                    metric)


def test_c_grid_is_the_reference_weight_decay_sweep():
    grid = c_grid(-6, 5, 45)
    assert len(grid) == 45 and grid[0] == pytest.approx(1e6) and grid[-1] == pytest.approx(1e-5)
    assert np.all(np.diff(grid) < 0)


def test_holdout_matches_reference_code():
    indices = list(range(103))
    np.random.seed(0)
    np.random.shuffle(indices)
    train, val = holdout_split(103)
    assert val.tolist() == indices[:20] and train.tolist() == indices[20:]


def test_linear_sklearn_path_equals_the_reference_loop(digits_features):
    """A direct transcription of the reference's LinearTester on real digits features (shorter grid)."""
    from sklearn.linear_model import LogisticRegression

    data = task_data(digits_features)
    grid = c_grid(-6, 5, 12)
    clf = LogisticRegression(solver="lbfgs", warm_start=True)
    best_score, best_c = 0.0, None
    for C in grid:
        clf.set_params(C=C)
        clf.fit(data.train.x, data.train.y)
        val = 100.0 * clf.score(data.val.x, data.val.y)
        if val > best_score:
            best_score, best_c = val, C
    clf.set_params(C=best_c)
    clf.fit(data.trainval.x, data.trainval.y)
    expected = 100.0 * clf.score(data.test.x, data.test.y)
    result = make_protocol("linear", {"num_wd": 12}).evaluate(data)
    assert result.chosen["C"] == pytest.approx(best_c)
    assert result.value == pytest.approx(expected)
    assert 85.0 < result.value < 100.0


def test_torch_solver_reaches_the_sklearn_optimum(digits_features):
    (x, y), _ = digits_features["train"], None
    C = 0.01
    reference = SklearnLogReg("multiclass", 10, max_iter=5000, tol=1e-8).fit(x, y, C)
    fast = TorchLogReg("multiclass", 10, max_iter=2000, tol=1e-7).fit(x, y, C)
    w_ref = reference.coefs[0][0]
    obj_ref = sklearn_objective(reference.decision_function(x), y, w_ref, C, "multiclass")
    obj_fast = fast.objective(x, y, C)
    assert abs(obj_fast - obj_ref) / obj_ref < 1e-4
    agreement = np.mean(fast.decision_function(x).argmax(1) == reference.decision_function(x).argmax(1))
    assert agreement > 0.995


@pytest.mark.parametrize("full", [True, False])
def test_preconditioned_sweep_matches_sklearn_at_every_C(digits_features, monkeypatch, full):
    """The whitened coordinates (eigenbasis, or per-feature for very wide features) are an exact change
    of variables: along a warm-started sweep the torch solution has sklearn's objective wherever the
    optimum is well defined. (At C >= 10 these separable digits leave a flat valley in which both
    solvers stop by the same gradient rule at different points.)"""
    import benchmark.protocols._logreg as logreg

    if not full:
        monkeypatch.setattr(logreg, "FULL_PRECONDITIONER_MAX_DIM", 0)
    (x, y) = digits_features["train"]
    reference, fast = SklearnLogReg("multiclass", 10), TorchLogReg("multiclass", 10)
    for C in c_grid(-6, 5, 12):
        obj_ref = sklearn_objective(reference.fit(x, y, C).decision_function(x), y, reference.coefs[0][0], C,
                                    "multiclass")
        obj_fast = fast.fit(x, y, C).objective(x, y, C)
        if C <= 1:
            assert obj_fast == pytest.approx(obj_ref, rel=1e-3)
    assert (fast._preconditioned[1].basis is not None) == full


def test_torch_binary_problem_uses_sklearns_single_vector(digits_features):
    (x, y) = digits_features["train"]
    mask = y < 2
    C = 0.05
    reference = SklearnLogReg("multiclass", 2, max_iter=5000, tol=1e-8).fit(x[mask], y[mask], C)
    fast = TorchLogReg("multiclass", 2, max_iter=2000, tol=1e-7).fit(x[mask], y[mask], C)
    np.testing.assert_allclose(fast.weight.numpy()[0], reference.coefs[0][0][0], atol=2e-3)


def test_linear_protocol_torch_and_sklearn_agree(digits_features):
    data = task_data(digits_features)
    slow = make_protocol("linear", {"num_wd": 12}).evaluate(data)
    fast = make_protocol("linear", {"num_wd": 12, "solver": "torch"}).evaluate(data)
    assert abs(slow.value - fast.value) <= 1.0


def reference_knn(train_x, train_y, test_x, k, temperature, classes):
    train = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    test = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
    predictions = []
    for row in test @ train.T:
        top = np.argsort(-row, kind="stable")[:k]
        votes = np.zeros(classes)
        for j in top:
            votes[train_y[j]] += np.exp(row[j] / temperature)
        predictions.append(votes.argmax())
    return np.array(predictions)


def test_knn_equals_a_direct_computation(digits_features):
    data = task_data(digits_features)
    result = make_protocol("knn").evaluate(data)
    for k in (10, 20, 100, 200):
        predictions = reference_knn(data.trainval.x, data.trainval.y, data.test.x, k, 0.07, 10)
        expected = 100.0 * np.mean(predictions == data.test.y)
        assert result.details["by_k"][str(k)] == pytest.approx(expected, abs=100.0 / len(predictions) + 1e-9)
    assert result.value == result.details["by_k"]["20"] and result.value > 90.0


def test_knn_search_in_train_chunks_merges_to_the_exact_top_k(digits_features):
    """Train chunks of 120 rows (the last one 70) give the exact top k: at every rank, the returned
    neighbour's true (float64) cosine similarity equals the k-th best similarity of a direct sort, to
    float32's resolution. Which of two neighbours tied within that resolution comes first is the CPU's
    rounding (AVX2 and AVX-512 differ), so the order of near-ties is not asserted."""
    from benchmark.protocols.knn import nearest_neighbours

    (x, _), (xt, _) = digits_features["train"], digits_features["test"]
    train, queries = x[:1030].astype(np.float64) + np.arange(1030)[:, None] * 1e-4, xt[:50]
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)
    exact = unit(queries.astype(np.float64)) @ unit(train).T
    best = -np.sort(-exact, axis=1)[:, :120]
    for chunk in (10**6, 100):
        similarities, indices = nearest_neighbours(train, queries, 120, chunk=chunk)
        np.testing.assert_allclose(np.take_along_axis(exact, indices, 1), best, atol=1e-6)
        np.testing.assert_allclose(similarities, best, atol=1e-5)
        assert all(len(set(row)) == 120 for row in indices)  # no neighbour returned twice


def test_knn_ivf_index_with_every_list_probed_equals_the_exact_index(digits_features):
    data = task_data(digits_features)
    exact = make_protocol("knn").evaluate(data)
    ivf = make_protocol("knn", {"index": "ivf", "nlist": 8, "nprobe": 8}).evaluate(data)
    assert ivf.details["by_k"] == exact.details["by_k"]


def test_knn_mean_per_class_metric_and_multilabel(digits_features):
    data = task_data(digits_features, metric="mean_per_class")
    assert make_protocol("knn").evaluate(data).metric == "mean_per_class"
    y = lambda f: np.eye(10)[f.y].astype(np.int64)
    multi = FeatureTask(Features(data.train.x, y(data.train)), Features(data.val.x, y(data.val)),
                     Features(data.test.x, y(data.test)), 10, "voc_map", "multilabel")
    assert make_protocol("knn").evaluate(multi).value > 90.0
    assert make_protocol("linear", {"num_wd": 4, "solver": "torch"}).evaluate(multi).value > 90.0


def test_metrics_on_hand_made_examples():
    labels = np.array([0, 0, 0, 0, 1, 1])
    predictions = np.array([0, 0, 0, 0, 0, 1])
    assert mean_per_class(labels, predictions) == pytest.approx(75.0)
    assert score("top1", labels, predictions) == pytest.approx(500 / 6)
    multi = np.array([[1, 0], [0, 1], [1, 1]])
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    assert voc_map(multi, scores) == pytest.approx(100.0)


def test_non_finite_features_are_refused(digits_features):
    data = task_data(digits_features)
    bad = data.train.x.copy()
    bad[3, 0] = np.nan
    broken = FeatureTask(Features(bad, data.train.y), data.val, data.test, 10, "top1")
    with pytest.raises(UserError, match="NaN or Inf"):
        make_protocol("knn").evaluate(broken)


def test_unknown_protocol_and_parameter_suggest_fixes():
    with pytest.raises(UserError, match="Did you mean 'linear'"):
        make_protocol("linaer")
    with pytest.raises(UserError, match="Did you mean 'solver'"):
        make_protocol("linear", {"solvr": "torch"})


def test_knn_keeps_top1_and_top5_at_every_k_as_dino_reports_them(digits_features):
    """Against a direct computation: cosine neighbours by a full sort, votes exp(sim / T), top-n by a
    sort of the votes."""
    data = task_data(digits_features)
    details = make_protocol("knn", {"k": [5, 20]}).evaluate(data).details
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)
    train = data.trainval
    similarity = unit(data.test.x.astype(np.float64)) @ unit(train.x.astype(np.float64)).T
    for k in (5, 20):
        nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
        votes = np.zeros((len(data.test.y), 10))
        for q, row in enumerate(nearest):
            for i in row:
                votes[q, train.y[i]] += np.exp(similarity[q, i] / 0.07)
        ranked = np.argsort(-votes, axis=1, kind="stable")
        for n in (1, 5):
            direct = 100 * np.mean([data.test.y[q] in ranked[q, :n] for q in range(len(ranked))])
            assert details[f"top{n}_by_k"][str(k)] == pytest.approx(direct, abs=100 / len(ranked) + 1e-9)
        assert details["top1_by_k"][str(k)] == pytest.approx(details["by_k"][str(k)])  # top-1 is the metric here
    assert details["top5_by_k"]["20"] > details["top1_by_k"]["20"] > 50


def test_voc_ap_edge_cases_are_the_reference_s():
    """A direct transcription of ssl-transfer's voc_eval_cls (sklearn precision_recall_curve + 11-point
    voc_ap) on hand-made scores, including a class with no positives (the reference gives 1/11)."""
    import warnings

    from sklearn.metrics import precision_recall_curve

    from benchmark.metrics import voc11_average_precision

    def reference(y_true, y_score):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns that recall is undefined without positives
            precision, recall, _ = precision_recall_curve(y_true, y_score)
        return sum((np.max(precision[recall >= t]) if np.sum(recall >= t) else 0) / 11.0
                   for t in np.linspace(0, 1, 11))

    rng = np.random.default_rng(6)
    scores = np.round(rng.normal(size=40), 1)  # rounded: tied scores too
    for labels in (rng.random(40) < 0.3, np.zeros(40, bool), np.ones(40, bool)):
        assert voc11_average_precision(labels.astype(int), scores) == pytest.approx(reference(labels, scores))
    assert voc11_average_precision(np.zeros(40, int), scores) == pytest.approx(1 / 11)
