import numpy as np
import pytest
import torch

from benchmark.data.splits import holdout_split
from benchmark.errors import UserError
from benchmark.metrics import mean_per_class, score, voc_map
from benchmark.protocols import Features, FeatureTask, make_protocol
from benchmark.protocols import _logreg
from benchmark.protocols._logreg import ConvergedLogReg, ReferenceLogReg, TorchLogReg, multinomial_loss_gradient
from benchmark.protocols._newton import Rotated, evaluate, hessian_vector, newton_cg
from benchmark.protocols._linear_sweep import c_grid, first_strict_best


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


def test_reference_objective_and_gradient_equal_a_direct_computation(digits_features):
    """scikit-learn 1.3's objective, sum of cross-entropies + ||W||^2 / (2C), and its gradient, against
    scipy's logsumexp and central finite differences."""
    from scipy.special import logsumexp

    (x, y) = digits_features["train"]
    x, y = x[:200].astype(np.float64), y[:200]
    rng = np.random.default_rng(0)
    params = rng.normal(size=(10, x.shape[1] + 1)) * 0.01
    C = 0.5
    loss, grad = multinomial_loss_gradient(params.ravel(order="F"), x, y, 10, 1.0 / C)
    logits = x @ params[:, :-1].T + params[:, -1]
    expected = (logsumexp(logits, axis=1) - logits[np.arange(len(y)), y]).sum() + np.sum(params[:, :-1] ** 2) / (2 * C)
    assert loss == pytest.approx(expected, rel=1e-12)
    for index in rng.choice(params.size, 5, replace=False):
        step = np.zeros(params.size)
        step[index] = 1e-6
        flat = params.ravel(order="F")
        numeric = (multinomial_loss_gradient(flat + step, x, y, 10, 1 / C)[0]
                   - multinomial_loss_gradient(flat - step, x, y, 10, 1 / C)[0]) / 2e-6
        assert grad[index] == pytest.approx(numeric, rel=1e-4, abs=1e-6)


def sklearn13_loss_gradient(flat: np.ndarray, x: np.ndarray, y: np.ndarray, rows: int, l2: float):
    """scikit-learn 1.3.2's LinearModelLoss(HalfMultinomialLoss).loss_gradient with unit sample weights,
    transcribed from its Python and its Cython (`_loss.pyx.tp`: sum_exp_minus_max, then per sample
    log(sum) + max - raw[y], p_k / sum - [y == k]), scalar by scalar with C's exp and log."""
    import math

    coef = flat.reshape((rows, -1), order="F")
    weights, intercept = coef[:, :-1], coef[:, -1]
    raw = x @ weights.T + intercept
    loss_out, gradient_out = np.empty(len(y)), np.empty((len(y), rows))
    for i in range(len(y)):
        max_value = raw[i, 0]
        for k in range(1, rows):
            if max_value < raw[i, k]:
                max_value = raw[i, k]
        p, sum_exps = [], 0.0
        for k in range(rows):
            p.append(math.exp(raw[i, k] - max_value))
            sum_exps += p[k]
        loss_out[i] = math.log(sum_exps) + max_value
        for k in range(rows):
            if y[i] == k:
                loss_out[i] -= raw[i, k]
            p[k] /= sum_exps
            gradient_out[i, k] = p[k] - (1.0 if y[i] == k else 0.0)
    loss = loss_out.sum()
    ravelled = np.ravel(weights, order="K")  # utils.extmath.squared_norm
    loss += 0.5 * l2 * np.dot(ravelled, ravelled)
    grad = np.empty((rows, x.shape[1] + 1), order="F")
    grad[:, :-1] = gradient_out.T @ x + l2 * weights
    grad[:, -1] = gradient_out.sum(axis=0)
    return loss, grad.ravel(order="F")


def test_reference_loss_is_scikit_learn_13s_bit_for_bit(digits_features):
    """With C's exp and log the reference loss and gradient equal scikit-learn 1.3.2's to the last bit
    (checked against the installed 1.3.2 in a side environment, and here against its transcription),
    so scipy's L-BFGS-B takes the same steps: the same fit however many iterations are capped."""
    from scipy.optimize import minimize

    from benchmark.protocols._logreg import libm_exp, libm_log

    x, y = digits_features["train"][0][:150].astype(np.float64), digits_features["train"][1][:150]
    rng = np.random.default_rng(2)
    for scale in (0.0, 0.01, 1.0):
        flat = rng.normal(size=10 * (x.shape[1] + 1)) * scale
        ours, theirs = multinomial_loss_gradient(flat, x, y, 10, 0.3, libm_exp, libm_log), \
            sklearn13_loss_gradient(flat, x, y, 10, 0.3)
        assert ours[0] == theirs[0] and np.array_equal(ours[1], theirs[1])
    C = 1e3  # far from converged after 15 iterations
    model = ReferenceLogReg("multiclass", 10, max_iter=15).fit(x, y, C)
    start = np.zeros(10 * (x.shape[1] + 1))
    direct = minimize(sklearn13_loss_gradient, start, args=(x, y, 10, 1 / C), method="L-BFGS-B", jac=True,
                      options={"gtol": 1e-4, "maxiter": 15}).x
    assert np.array_equal(model.state, direct.reshape((10, -1), order="F"))


def test_newton_cg_works_in_an_exact_change_of_variables(digits_features):
    """In the eigenbasis the objective is the original one (checked against scikit-learn 1.3's loss, which
    is sum-scaled), its Hessian-vector product is the derivative of its gradient (float32 products: to
    1e-4), and a solution rotated back is the original coordinates' optimum."""
    x, y = digits_features["train"][0][:300].astype(np.float64), digits_features["train"][1][:300]
    rotated, rng, lam = Rotated.of(x), np.random.default_rng(1), 1e-3
    params = rng.normal(size=(10, x.shape[1] + 1)) * 0.01
    params = rotated.unrotate(*rotated.rotate(params))  # zero-sum over classes, in the rows' directions
    targets = torch.nn.functional.one_hot(torch.as_tensor(y), 10).double()
    lams = torch.tensor([lam], dtype=torch.float64)  # one fit: every state tensor has the fits first

    def at(u, c):
        return evaluate(rotated, targets, lams, u[None], c[None])

    state = at(*rotated.rotate(params))
    loss, gradient = multinomial_loss_gradient(params.ravel(order="F"), x, y, 10, lam * len(y))
    assert float(state.loss[0]) == pytest.approx(loss / len(y), rel=1e-12)
    assert float(state.norm[0]) == pytest.approx(np.linalg.norm(gradient) / len(y), rel=1e-9)
    du, dc = (torch.as_tensor(rng.normal(size=t.shape)) for t in (state.u[0], state.c[0]))
    hu, hc = hessian_vector(rotated, state.probabilities.float(), lams, du[None], dc[None])
    step = 1e-5
    ahead, behind = (at(state.u[0] + s * du, state.c[0] + s * dc) for s in (step, -step))
    numeric = torch.cat([(ahead.grad_u - behind.grad_u).ravel(), (ahead.grad_c - behind.grad_c).ravel()]) / (2 * step)
    np.testing.assert_allclose(torch.cat([hu.ravel(), hc.ravel()]).numpy(), numeric.numpy(), rtol=1e-4,
                               atol=1e-4 * float(numeric.abs().max()))
    solution, steps = newton_cg(rotated, y, 10, np.zeros_like(params), lam, 1e-9, 100)
    _, gradient = multinomial_loss_gradient(solution.ravel(order="F"), x, y, 10, lam * len(y))
    assert np.linalg.norm(gradient) / len(y) < 1e-9 and 0 < steps < 100


@pytest.mark.parametrize("solver", ["converged", "reference", "fast"])
def test_a_train_split_of_one_class_is_one_message(digits_features, solver):
    data = task_data(digits_features)
    train = Features(data.train.x, np.zeros_like(data.train.y))
    with pytest.raises(UserError, match="needs at least two classes among the 1,151 train labels, and they are all "
                                        "class 0; check the dataset's train split"):
        make_protocol("linear", {"solver": solver, "num_wd": 2}).evaluate(
            FeatureTask(train, data.val, data.test, 10, "top1"))


def test_converged_mode_runs_every_fit_to_the_optimum(digits_features):
    """Each fit ends where the gradient of the mean loss is below 1e-6, at large C too (where the
    reference's 100 iterations stop short), and lands where scikit-learn run to a tight tolerance does."""
    from sklearn.linear_model import LogisticRegression

    data = task_data(digits_features)
    x, y = data.train.x.astype(np.float64), data.train.y
    model = ConvergedLogReg("multiclass", 10, max_iter=1000, tol=1e-6)
    for C in (1e4, 1e2, 1.0, 1e-2):
        model.fit(data.train.x, y, C)
        _, gradient = multinomial_loss_gradient(model.state.ravel(order="F"), x, y, 10, 1.0 / C)
        assert np.linalg.norm(gradient) / len(y) < 1e-6 and model.iterations < 1000
        if C <= 1e2:
            clf = LogisticRegression(C=C, max_iter=10_000, tol=1e-10).fit(x, y)
            assert np.mean(model.decision_function(data.val.x).argmax(1) == clf.predict(data.val.x)) > 0.99


def test_converged_mode_is_a_property_of_the_features_not_of_row_order_or_rounding(digits_features):
    """The default solver: the same chosen C and test score with the train rows in another order, and with
    features that differ from these by float32 rounding."""
    data = task_data(digits_features)
    base = make_protocol("linear", {"num_wd": 12}).evaluate(data)
    assert base.details["solver"] == "converged" and base.details["capped_fits"] == 0
    order = np.random.default_rng(0).permutation(len(data.train))
    noise = 1 + np.random.default_rng(1).uniform(-6e-8, 6e-8, size=data.train.x.shape)
    for train in (Features(data.train.x[order], data.train.y[order]),
                  Features(data.train.x.astype(np.float64) * noise, data.train.y)):
        other = make_protocol("linear", {"num_wd": 12}).evaluate(
            FeatureTask(train, data.val, data.test, 10, "top1"))
        assert other.chosen["C"] == base.chosen["C"] and other.value == base.value
        # Up to C = 1e3 no validation image changes side. Above it the optimum is numerically ill-determined
        # (suites/offline.yaml stops there): on an AMD EPYC one image moved at C = 1e6, so one image is allowed.
        curve, other_curve = (np.asarray(result.details["val_curve"]) for result in (base, other))
        well_determined = c_grid(-6.0, 5.0, 12) <= 1e3  # the sweep's grid: num_wd 12 over the default range
        np.testing.assert_allclose(other_curve[well_determined], curve[well_determined], atol=0.3)
        np.testing.assert_allclose(other_curve, curve, atol=100 / len(data.val) + 1e-9)


def test_reference_mode_reaches_sklearns_optimum_where_its_fits_converge(digits_features):
    """Where 100 iterations suffice (small C), the reference mode's sweep lands where any converged
    solver does: the installed scikit-learn run to a tight tolerance, whatever its version."""
    from sklearn.linear_model import LogisticRegression

    data = task_data(digits_features)
    result = make_protocol("linear", {"num_wd": 4, "wd_start": 2, "wd_stop": 5, "solver": "reference"}).evaluate(data)
    assert result.details["capped_fits"] == 0 and result.details["solver"] == "reference"
    for C, val in zip(c_grid(2, 5, 4), result.details["val_curve"]):
        clf = LogisticRegression(C=C, max_iter=10_000, tol=1e-10).fit(data.train.x.astype(np.float64), data.train.y)
        assert val == pytest.approx(100.0 * clf.score(data.val.x, data.val.y))


def test_two_class_problems_are_a_symmetric_softmax_as_in_the_reference(digits_features):
    """multi_class="multinomial" with two classes: rows [-w, w], which is binary logistic regression at 2C.
    Both solvers keep that meaning; the binary fit by the installed scikit-learn is the independent check."""
    from sklearn.linear_model import LogisticRegression

    (x, y) = digits_features["train"]
    mask = (y == 3) | (y == 8)
    x, y = x[mask].astype(np.float64), (y[mask] == 8).astype(np.int64)
    C = 1e-3
    binary = LogisticRegression(C=2 * C, max_iter=10_000, tol=1e-10).fit(x, y)
    expected = binary.decision_function(x)
    for solver in (ReferenceLogReg("multiclass", 2), TorchLogReg("multiclass", 2, max_iter=2000, tol=1e-7)):
        logits = solver.fit(x, y, C).decision_function(x)
        np.testing.assert_allclose(logits[:, 1] - logits[:, 0], expected, rtol=2e-3, atol=2e-3)


def test_torch_solver_reaches_the_reference_optimum(digits_features):
    (x, y) = digits_features["train"]
    C = 0.01
    reference = ReferenceLogReg("multiclass", 10, max_iter=1000, tol=1e-6).fit(x, y, C)
    # tol 1e-5: about what a float32 gradient resolves on these features; below it L-BFGS only stalls
    fast = TorchLogReg("multiclass", 10, max_iter=500, tol=1e-5).fit(x, y, C)
    agreement = np.mean(fast.decision_function(x).argmax(1) == reference.decision_function(x).argmax(1))
    assert agreement > 0.995
    np.testing.assert_allclose(fast.weight.numpy(), reference.state[:, :-1], atol=2e-3)


@pytest.mark.parametrize("full", [True, False])
def test_preconditioned_sweep_matches_the_reference_at_every_converging_C(digits_features, monkeypatch, full):
    """The whitened coordinates (eigenbasis, or per-feature for very wide features) are an exact change
    of variables: along a warm-started sweep the torch solution scores as the reference's wherever the
    optimum is reached (C <= 0.01 on these digits)."""
    import benchmark.protocols._logreg as logreg

    if not full:
        monkeypatch.setattr(logreg, "FULL_PRECONDITIONER_MAX_DIM", 0)
    (x, y) = digits_features["train"]
    reference, fast = ReferenceLogReg("multiclass", 10, 500, 1e-6), TorchLogReg("multiclass", 10, 500, 1e-5)
    for C in c_grid(2, 4, 3):  # (at C = 1e-5 the logits are near ties: either solver's rounding decides)
        agree = np.mean(reference.fit(x, y, C).decision_function(x).argmax(1)
                        == fast.fit(x, y, C).decision_function(x).argmax(1))
        assert agree > 0.995
    assert (fast._preconditioned[1].basis is not None) == full


def test_the_converged_solver_with_fewer_rows_than_features_solves_in_their_span(digits_features, monkeypatch):
    """A 3-shot problem (30 rows of the 192-d digits features): solved in the rows' span it reaches the same
    optimum as in all 192 dimensions, and its weights are combinations of the rows."""
    (x, y) = digits_features["train"]
    rows = np.concatenate([np.flatnonzero(y == c)[:3] for c in range(10)])
    x, y = x[rows], y[rows]
    spanned = ConvergedLogReg("multiclass", 10, 1000, 1e-8).fit(x, y, 0.1)
    full = ConvergedLogReg("multiclass", 10, 1000, 1e-8)
    monkeypatch.setattr(full, "_minimise", full._newton)
    full.fit(x, y, 0.1)
    assert spanned._span is not None and spanned._span[1].shape == (x.shape[1], 30)
    np.testing.assert_allclose(spanned.state, full.state, atol=1e-6)
    weights = spanned.state[:, :-1]
    residual = weights - weights @ np.linalg.pinv(x) @ x  # the part outside the rows' span
    assert np.abs(residual).max() < 1e-6 * np.abs(weights).max()


@pytest.mark.parametrize("classes, rows, at_once", [(10, 900, 9), (2, 900, 9), (10, 60, 9), (10, 900, 2)])
def test_the_converged_sweep_fits_every_c_at_once_to_the_optimum_of_each(digits_features, monkeypatch, classes,
                                                                        rows, at_once):
    """`fit_grid` runs the grid's fits in lockstep (more rows than the 192 features, and fewer: their span;
    with working memory for only two fits at once, in groups of two); each lands on the optimum that its own
    fit (warm-started, one C at a time) reaches, to the solver's tolerance, and counts its own Newton steps."""
    (x, y) = digits_features["train"]
    keep = np.flatnonzero(y < classes)[:rows]
    x, y = x[keep], y[keep]
    monkeypatch.setattr(_logreg, "LOCKSTEP_BYTES", at_once * _logreg.LOCKSTEP_ARRAYS * 8 * len(y) * classes)
    assert _logreg.lockstep_fits(len(y), classes) == at_once
    grid = 1.0 / np.logspace(-3, 5, 9).astype(np.float32).astype(np.float64)
    together = ConvergedLogReg("multiclass", classes, 1000, 1e-8).fit_grid(x, y, grid)
    alone = ConvergedLogReg("multiclass", classes, 1000, 1e-8)
    for C, fitted in zip(grid[::-1], together[::-1]):  # smallest C first, each fit from the last optimum
        mine, theirs = fitted.decision_function(x), alone.fit(x, y, C).decision_function(x)
        np.testing.assert_allclose(mine, theirs, atol=1e-4 * np.abs(theirs).max())
        assert fitted.state.shape == alone.state.shape and fitted.iterations > 0
        np.testing.assert_array_equal(mine.argmax(1), theirs.argmax(1))
    assert len({fitted.iterations for fitted in together}) > 1  # each fit stopped on its own gradient


def test_the_lockstep_sweeps_working_memory_is_bounded():
    """An ImageNet-size sweep (1.28M rows, 1,000 classes, 45 C values) runs one fit at a time: its working
    arrays are one fit's, not 45 fits' (about 3 TB); a small sweep runs all its fits together."""
    one_fit = _logreg.LOCKSTEP_ARRAYS * 8 * 1_281_167 * 1000
    assert _logreg.lockstep_bytes(1_281_167, 1000, 45) == one_fit
    assert _logreg.lockstep_bytes(3200, 10, 9) == 9 * _logreg.LOCKSTEP_ARRAYS * 8 * 3200 * 10


@pytest.mark.parametrize("fails_in", [("float32",), ("float32", "float64")])
def test_a_covariance_lapack_cannot_decompose_falls_back_to_an_exact_preconditioner(digits_features, monkeypatch,
                                                                                   fails_in):
    """float32 eigh gave up on the 1-shot covariances of EfficientNet-Lite0 features (10 rows, 1280 dims):
    the preconditioner then decomposes in float64, else whitens per feature; the optimum is the same."""
    (x, y) = digits_features["train"]
    expected = ConvergedLogReg("multiclass", 10, 100, 1e-8).fit(x, y, 0.01).decision_function(x)  # the optimum
    eigh = torch.linalg.eigh

    def failing(matrix):
        if str(matrix.dtype).removeprefix("torch.") in fails_in:
            raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")
        return eigh(matrix)

    monkeypatch.setattr(torch.linalg, "eigh", failing)
    fast = TorchLogReg("multiclass", 10, 500, 1e-7).fit(x, y, 0.01)
    assert (fast._preconditioned[1].basis is None) == (len(fails_in) == 2)
    np.testing.assert_allclose(fast.decision_function(x), expected, atol=1e-3 * np.abs(expected).max())
    np.testing.assert_array_equal(fast.decision_function(x).argmax(1), expected.argmax(1))


def test_permutations_record_the_reference_rerun_with_shuffled_rows(digits_features):
    """`permutations: P` stores the reference solver's chosen C and score for row orders 0..P-1, each the
    same as `reference_under_permutation` gives on its own, and their range as the spread."""
    from benchmark.protocols._linear_sweep import reference_under_permutation

    data = task_data(digits_features)
    protocol = make_protocol("linear", {"num_wd": 6, "permutations": 2, "solver": "reference"})
    details = protocol.evaluate(data).details
    reruns = [reference_under_permutation(data, protocol.params, seed) for seed in range(2)]
    assert details["permutation_C"] == [C for C, _ in reruns]
    assert details["permutation_scores"] == [value for _, value in reruns]
    assert details["permutation_spread"] == max(details["permutation_scores"]) - min(details["permutation_scores"])


def test_first_strict_best_is_the_reference_selection_rule():
    assert first_strict_best([90.0, 95.0, 95.0, 94.0]) == 1  # a tie keeps the earlier (larger) C
    assert first_strict_best([float("nan"), 80.0]) == 1  # NaN never wins
    assert first_strict_best([0.0, 0.0]) == 0


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
    assert make_protocol("linear", {"num_wd": 4, "solver": "fast"}).evaluate(multi).value > 90.0


def test_mean_per_class_is_the_references_confusion_matrix_rule():
    """ssl-transfer's mean per-class accuracy: confusion_matrix(y, pred), diagonal over row sums, mean.
    A class never predicted counts 0 in both. A predicted class with no test example is a 0/0 row there,
    so the reference's mean is NaN; ours is the mean over the classes that have test examples, which is
    the reference's value whenever the reference has one."""
    import warnings

    from sklearn.metrics import confusion_matrix

    def reference(labels, predictions):
        cm = confusion_matrix(labels, predictions)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return 100.0 * (cm.diagonal() / cm.sum(axis=1)).mean()

    labels = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    never_predicts_2 = np.array([0, 1, 1, 1, 0, 0, 1, 0, 1])
    assert mean_per_class(labels, never_predicts_2) == pytest.approx(reference(labels, never_predicts_2)) \
        == pytest.approx(100 * (1 / 2 + 2 / 3 + 0) / 3)
    predicts_unseen_3 = np.array([0, 3, 1, 1, 3, 2, 2, 3, 3])
    assert np.isnan(reference(labels, predicts_unseen_3))
    assert mean_per_class(labels, predicts_unseen_3) == pytest.approx(100 * (1 / 2 + 2 / 3 + 2 / 4) / 3)


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
        make_protocol("linear", {"solvr": "fast"})


def test_knn_ranks_votes_in_query_blocks_with_the_same_result(digits_features, monkeypatch):
    """Top-n accuracy over blocks of 7 queries (ImageNet's votes are ranked 8,192 queries at a time) equals
    one sort of every query's votes, to the bit; and the row keeps one votes array's result per k."""
    import benchmark.protocols.knn as knn

    data = task_data(digits_features)
    whole = make_protocol("knn", {"k": [5, 20]}).evaluate(data)
    monkeypatch.setattr(knn, "QUERY_BLOCK", 7)
    blocked = make_protocol("knn", {"k": [5, 20]}).evaluate(data)
    assert blocked.details == whole.details and len(data.test) % 7 != 0
    assert blocked.per_example.test_correct.tolist() == whole.per_example.test_correct.tolist()


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


def test_the_converged_refit_fixes_the_printed_test_logits_whatever_the_rounding(digits_features):
    """The tables print the refit's test logits (accuracy, and ECE, which bins confidences), so they are
    run to REFIT_TOL: with the train+val rows reordered and perturbed at float32 resolution, as another
    CPU's kernels would round them, the test logits agree to 1e-4 (measured: 5e-6 on logits up to 38 nats;
    stopped at the sweep's 1e-6 they moved by 1.3e-3 here, and on Lite2's MNIST-5k features ECE moved by
    0.11 points between two MKL kernel paths)."""
    from benchmark.protocols._linear_sweep import SweepParams, refit_logits

    data = task_data(digits_features)
    p = SweepParams(num_wd=12, wd_start=-2.0)
    base = refit_logits(data, p, "test", "trainval")
    order = np.random.default_rng(0).permutation(len(data.train))
    noise = 1 + np.random.default_rng(1).uniform(-6e-8, 6e-8, size=data.train.x.shape)
    train = Features((data.train.x.astype(np.float64) * noise)[order], data.train.y[order])
    other = refit_logits(FeatureTask(train, data.val, data.test, 10, "top1"), p, "test", "trainval")
    assert np.abs(base).max() > 10  # a large-C probe: logits of many nats, where a loose stop shows
    np.testing.assert_allclose(other, base, rtol=0, atol=1e-4)


@pytest.mark.parametrize("rows, offset, C", [(40, 30.0, 1.0), (200, 50.0, 1.0)])
def test_a_tight_converged_fit_gets_past_the_float64_losss_resolution(digits_features, rows, offset, C):
    """Near a tight tolerance a Newton step lowers the mean loss by less than float64 resolves (a few
    units in its last place): the line search then judges the step by the gradient's norm. Judged by the
    loss alone, these fits (features with a large mean, as unnormalised CNN features have) stalled at a
    gradient of 4e-10 to 9e-10 and ran to the 1,000-step cap; now each reaches 1e-10 in about 20 steps
    (a low-shot refit of Lite0's Fashion-MNIST features had taken 9.9 s so, against 0.02 s)."""
    x, y = digits_features["train"]
    x, y = (x[:rows] + offset).astype(np.float32), y[:rows]
    model = ConvergedLogReg("multiclass", 10, max_iter=1000, tol=1e-10).fit(x, y, C)
    _, gradient = multinomial_loss_gradient(model.state.ravel(order="F"), x.astype(np.float64), y, 10, 1.0 / C)
    assert model.iterations < 60 and np.linalg.norm(gradient) / rows < 2e-10
