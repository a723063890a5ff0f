"""Two L-BFGS logistic-regression solvers with one interface and one objective.

Objective (the reference's, with its C): C * sum_i loss_i + 0.5 * ||W||^2, bias unpenalised; i.e.
mean loss + ||W||^2 / (2 C n). Every problem is a softmax over its classes, as the reference's
`multi_class="multinomial"` makes it: a two-class problem (and each class of a multi-label problem) is
a symmetric 2-class softmax, which is binary logistic regression at 2C. Both solvers keep their last
solution and start the next `fit` from it (warm start), as the reference's
`LogisticRegression(warm_start=True)` does across its C sweep.

- `ReferenceLogReg` reproduces the reference's iterates (scipy's L-BFGS-B, 100 iterations, float64).
- `ConvergedLogReg` is the same model and objective with every fit run to convergence (Newton-CG).
- `TorchLogReg` is the fast path: the same objective minimised by L-BFGS in torch, on the run's device,
  capped at 100 iterations like the reference.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from benchmark.identity import Component
from benchmark.protocols._newton import Rotated, newton_cg, newton_cg_many
from benchmark.vocab import TaskType


# every solver below (reference, converged, fast): bump when any of them can land elsewhere
# 2: the converged solver is Newton-CG, its sweep from the smallest C; 3: its line search past the loss's resolution
SOLVERS = Component("logreg_solvers", "3")
LOCKSTEP_BYTES = 1 << 30  # the rows x classes float64 working arrays of the fits run in lockstep, at most
LOCKSTEP_ARRAYS = 8  # such arrays per fit (probabilities, log-probabilities, residuals, their trial copies)


def binary_scores(s: np.ndarray) -> np.ndarray:
    """Two-class decision values as (N, 2) logits [0, s]: arg-max picks class 1 when s > 0, and their
    softmax is sklearn's predict_proba (sigmoid(s))."""
    return np.stack([np.zeros_like(s), s], axis=1)


class ReferenceLogReg:
    """Ericsson's fit as 2020-era scikit-learn ran it, whatever scikit-learn is installed.

    The reference calls `LogisticRegression(solver="lbfgs", multi_class="multinomial", warm_start=True)`.
    Up to scikit-learn 1.3 that minimised, in float64, sum_i loss_i + ||W||^2 / (2 C) (bias unpenalised)
    with scipy's L-BFGS-B at its defaults except gtol = tol and maxiter = max_iter, over the (classes,
    features + 1) parameters ravelled column-major; scikit-learn 1.4 rescaled the objective by 1/n and
    tightened ftol, and 1.8 removed `multi_class`. This class transcribes the 1.3 rule on top of scipy,
    so its iterates do not depend on the installed scikit-learn:
    - every problem is a softmax over the classes present in y, two classes included (a symmetric
      2-class softmax; its decision value is the positive row's, and a warm start rebuilds [-w, w]);
    - multi-label data refits one estimator class by class, each fit warm-starting from the last,
      as the reference's loop over VOC's 20 classes does;
    - the loss and gradient are scikit-learn 1.3.2's to the last bit (`libm_exp`), and scipy's L-BFGS-B
      is its Fortran (scipy < 1.15), so a capped fit stops where scikit-learn 1.3.2's stops on the same
      rows in the same order with the same BLAS.
    """

    def __init__(self, task: str, num_classes: int, max_iter: int = 100, tol: float = 1e-4):
        self.task, self.num_classes, self.max_iter, self.tol = task, num_classes, max_iter, tol
        self.state: np.ndarray | None = None  # scikit-learn's coef_ with intercept_ appended: (rows, D + 1)
        self.fitted: list[tuple[np.ndarray, np.ndarray]] = []  # per estimator: (present classes, state)
        self.iterations = 0
        self._converted: list[tuple[np.ndarray, np.ndarray]] = []

    def warm_copy(self) -> ReferenceLogReg:
        copied = type(self)(self.task, self.num_classes, self.max_iter, self.tol)
        copied.state = None if self.state is None else self.state.copy()
        return copied

    def _float64(self, x: np.ndarray) -> np.ndarray:
        """scikit-learn's lbfgs path converts features to C-ordered float64; done once per array (the last
        two are kept: the sweep alternates between fitting on train and scoring val)."""
        for array, converted in self._converted:
            if array is x:
                return converted
        converted = np.ascontiguousarray(x, dtype=np.float64)
        self._converted = [*self._converted[-1:], (x, converted)]  # the sweep's train and val arrays
        return converted

    def fit(self, x: np.ndarray, y: np.ndarray, C: float) -> ReferenceLogReg:
        features, self.iterations = self._float64(x), 0
        targets = [y[:, c] for c in range(y.shape[1])] if self.task == TaskType.MULTILABEL else [y]
        self.fitted = [self._fit_one(features, target, C) for target in targets]
        return self

    def _fit_one(self, x: np.ndarray, y: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray]:
        classes, encoded = np.unique(y, return_inverse=True)
        rows = max(len(classes), 2)
        start = np.zeros((rows, x.shape[1] + 1))
        if self.state is not None and self.state.shape[1] == x.shape[1] + 1:
            if rows == 2 and self.state.shape[0] == 1:
                start[0], start[1] = -self.state[0], self.state[0]
            elif self.state.shape[0] == rows:
                start = self.state.copy()
        flat, iterations = self._minimise(start.ravel(order="F"), x, encoded, rows, C)
        self.iterations += iterations
        solution = flat.reshape((rows, -1), order="F")
        self.state = solution[1:].copy() if rows == 2 else solution.copy()
        return classes, self.state

    def _minimise(self, start: np.ndarray, x: np.ndarray, y: np.ndarray, rows: int, C: float
                  ) -> tuple[np.ndarray, int]:
        """scipy's L-BFGS-B at its defaults but gtol and maxiter: (solution, iterations)."""
        from scipy.optimize import minimize

        result = minimize(multinomial_loss_gradient, start, method="L-BFGS-B", jac=True,
                          args=(x, y, rows, 1.0 / C, libm_exp, libm_log),
                          options={"gtol": self.tol, "maxiter": self.max_iter})
        return result.x, int(result.nit)

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        features = self._float64(x)
        scores = [self._logits(features, state) for _, state in self.fitted]
        if self.task == TaskType.MULTILABEL:
            return np.stack([s[:, 0] for s in scores], axis=1)
        (classes, _), s = self.fitted[0], scores[0]
        if s.shape[1] == 1:  # a symmetric 2-class softmax: logits [-s, s] (scikit-learn's predict_proba)
            s = np.concatenate([-s, s], axis=1)
        full = np.full((len(x), self.num_classes), -np.inf)
        full[:, classes.astype(int)] = s  # a class absent from training is never predicted
        return full

    @staticmethod
    def _logits(features: np.ndarray, state: np.ndarray) -> np.ndarray:
        return features @ state[:, :-1].T + state[:, -1]


class ConvergedLogReg(ReferenceLogReg):
    """The reference's model and objective (float64, unscaled, every problem a softmax, warm starts),
    each fit run to convergence: Newton-CG in the features' eigenbasis (`_newton.py`), stopped when the
    gradient of the mean loss has norm below `tol` (`max_iter` caps its Newton steps only against a fit
    that never gets there, and is counted in the row). Newton steps are what make this affordable: on
    unstandardised features L-BFGS needed over 3,000 iterations at moderate C, Newton under 10.

    With fewer rows than features (a low-shot probe: 10 to 160 rows of 1280-d features) the weights are
    solved for in the rows' span: the penalised optimum lies there (its gradient condition makes W a
    combination of the rows), and an orthonormal basis Q of the span keeps the objective, the penalty
    and the gradient norm unchanged, so the same optimum is reached with n instead of D unknowns."""

    _span: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (x, basis Q (D, n), x @ Q)
    _rotated: tuple[np.ndarray, Rotated] | None = None  # (x, its eigenbasis coordinates)

    def _minimise(self, start: np.ndarray, x: np.ndarray, y: np.ndarray, rows: int, C: float
                  ) -> tuple[np.ndarray, int]:
        if len(x) >= x.shape[1]:
            return self._newton(start, x, y, rows, C)
        basis, projected = self._row_span(x)
        params = start.reshape((rows, -1), order="F")
        reduced = np.concatenate([matmul(params[:, :-1], basis), params[:, -1:]], axis=1)
        flat, iterations = self._newton(reduced.ravel(order="F"), projected, y, rows, C)
        solution = flat.reshape((rows, -1), order="F")
        return np.concatenate([matmul(solution[:, :-1], basis.T), solution[:, -1:]], axis=1).ravel(order="F"), iterations

    @staticmethod
    def _logits(features: np.ndarray, state: np.ndarray) -> np.ndarray:
        return matmul(features, state[:, :-1].T) + state[:, -1]

    def fit_grid(self, x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> list[ConvergedLogReg]:
        """One fitted copy per C of `grid`. A fit's optimum does not depend on its start, so any order and
        any starts give the same sweep. Every C is fitted at once (`newton_cg_many`): each Hessian product
        reads the rows once for all the Cs still solving, where one fit's product is memory-bound on large
        rows. Multi-label data (one estimator per class, each warm-starting the next) is fitted C by C,
        smallest first, each fit from the last optimum."""
        features = self._float64(x)
        if self.task == TaskType.MULTILABEL:
            return self._one_by_one(features, y, grid)
        classes, encoded = np.unique(y, return_inverse=True)
        solutions, steps = self._minimise_grid(features, encoded, max(len(classes), 2), grid)
        fitted = []
        for solution, iterations in zip(solutions, steps):
            model = type(self)(self.task, self.num_classes, self.max_iter, self.tol)
            model.state = solution[1:].copy() if len(solution) == 2 else solution
            model.fitted, model.iterations = [(classes, model.state)], iterations
            fitted.append(model)
        return fitted

    def _one_by_one(self, x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> list[ConvergedLogReg]:
        fitted: dict[int, ConvergedLogReg] = {}
        for i in np.argsort(grid, kind="stable"):
            fitted[i] = self.fit(x, y, grid[i]).warm_copy()
            fitted[i].fitted, fitted[i].iterations = self.fitted, self.iterations
        return [fitted[i] for i in range(len(grid))]

    def _minimise_grid(self, x: np.ndarray, y: np.ndarray, rows: int, grid: np.ndarray
                       ) -> tuple[list[np.ndarray], list[int]]:
        """(rows, D + 1) solutions, one per C, in the eigenbasis of the rows (or of their span, with fewer
        rows than features: see the class docstring)."""
        if len(x) >= x.shape[1]:
            return self._lockstep(self._rotation(x), y, rows, grid)
        basis, projected = self._row_span(x)
        solutions, steps = self._lockstep(self._rotation(projected), y, rows, grid)
        return [np.concatenate([matmul(s[:, :-1], basis.T), s[:, -1:]], axis=1) for s in solutions], steps

    def _lockstep(self, rotated: Rotated, y: np.ndarray, rows: int, grid: np.ndarray
                  ) -> tuple[list[np.ndarray], list[int]]:
        """The grid's fits in lockstep, as many at a time as `LOCKSTEP_BYTES` allows, smallest C first;
        the first group starts from zero, each later one from the last group's least regularised optimum."""
        lams = np.array([1.0 / (C * len(y)) for C in grid])
        at_once = lockstep_fits(len(y), rows)
        solutions, steps = [None] * len(grid), [0] * len(grid)
        start = np.zeros((rows, rotated.mean.shape[0] + 1))
        order = np.argsort(-lams, kind="stable")  # the most regularised first
        for group in np.array_split(order, -(-len(grid) // at_once)):
            found, taken = newton_cg_many(rotated, y, rows, np.stack([start] * len(group)), list(lams[group]),
                                          self.tol, self.max_iter)
            for i, solution, n in zip(group, found, taken):
                solutions[i], steps[i] = solution, n
            start = found[-1]
        return solutions, steps

    def _rotation(self, x: np.ndarray) -> Rotated:
        """The eigenbasis coordinates of `x`, computed once per array."""
        if self._rotated is None or self._rotated[0] is not x:
            self._rotated = (x, Rotated.of(x))
        return self._rotated[1]

    def _row_span(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An orthonormal basis of the rows' span and the rows in it, computed once per array."""
        if self._span is None or self._span[0] is not x:
            basis = torch.linalg.qr(torch.as_tensor(x.T, device="cpu"))[0].numpy()
            self._span = (x, basis, np.ascontiguousarray(matmul(x, basis)))
        return self._span[1], self._span[2]

    def _newton(self, start: np.ndarray, x: np.ndarray, y: np.ndarray, rows: int, C: float
                ) -> tuple[np.ndarray, int]:
        params = start.reshape((rows, -1), order="F")
        solution, steps = newton_cg(self._rotation(x), y, rows, params, 1.0 / (C * len(y)), self.tol, self.max_iter)
        return solution.ravel(order="F"), steps


def lockstep_fits(rows: int, classes: int) -> int:
    """How many fits run in lockstep: as many as `LOCKSTEP_BYTES` of working arrays hold, at least one."""
    return max(1, LOCKSTEP_BYTES // (LOCKSTEP_ARRAYS * 8 * rows * classes))


def lockstep_bytes(rows: int, classes: int, fits: int) -> int:
    """The converged solver's rows x classes working arrays for a sweep of `fits` C values."""
    return min(fits, lockstep_fits(rows, classes)) * LOCKSTEP_ARRAYS * 8 * rows * classes


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b through torch's BLAS. The converged solver does all its linear algebra in torch: a numpy
    (OpenBLAS) product leaves OpenBLAS's threads spinning for a while, and every torch parallel region in
    that time waits for a core (measured on 2 cores: a 160 x 10 log-softmax after a numpy product took
    6.9 ms instead of 0.03 ms, and the low-shot column ran 4x slower)."""
    return (torch.as_tensor(a, device="cpu") @ torch.as_tensor(b, device="cpu")).numpy()


LIBM_CHUNK = 1 << 16  # entries turned into Python floats at once: ~5 MB, however large the array


def elementwise(function, a: np.ndarray) -> np.ndarray:
    """`function` (a C math function) applied to every entry, in chunks of `LIBM_CHUNK` entries, so
    memory holds one chunk's Python floats, not the array's (an ImageNet probe's 1.28e9 logits would be
    ~40 GB of them); each entry's bits are the same whatever the chunking."""
    flat, out = a.ravel(), np.empty(a.size, np.float64)
    for start in range(0, a.size, LIBM_CHUNK):
        part = flat[start:start + LIBM_CHUNK]
        out[start:start + len(part)] = np.fromiter(map(function, part.tolist()), np.float64, len(part))
    return out.reshape(a.shape)


def libm_exp(a: np.ndarray) -> np.ndarray:
    """C's exp element by element, as scikit-learn's compiled loss calls it. numpy's vectorised exp
    rounds differently in the last bit (on digits features, a fifth of the entries; and differently in
    each numpy release), and a fit stopped at 100 iterations carries that into its chosen C."""
    return elementwise(math.exp, a)


def libm_log(a: np.ndarray) -> np.ndarray:
    """C's log element by element (see `libm_exp`)."""
    return elementwise(math.log, a)


def multinomial_loss_gradient(flat: np.ndarray, x: np.ndarray, y: np.ndarray, rows: int, l2: float,
                              exp=np.exp, log=np.log) -> tuple[float, np.ndarray]:
    """scikit-learn 1.3's LinearModelLoss(HalfMultinomialLoss).loss_gradient with unit sample weights:
    sum of cross-entropies + l2 / 2 ||W||^2, and its gradient, both over column-major parameters.
    With `exp=libm_exp, log=libm_log` it is bit for bit scikit-learn 1.3.2's (its Cython loss adds the
    classes one by one and calls C's exp and log; its penalty ravels the weights in memory order)."""
    params = flat.reshape((rows, -1), order="F")
    weight, bias = params[:, :-1], params[:, -1]
    logits = x @ weight.T + bias
    top = logits.max(1)
    exps = exp(logits - top[:, None])
    total = exps[:, 0].copy()
    for k in range(1, rows):  # class by class, as scikit-learn's Cython loss adds them (not pairwise)
        total += exps[:, k]
    picked = np.arange(len(y))
    ravelled = np.ravel(weight, order="K")
    penalty = 0.5 * l2 * float(np.dot(ravelled, ravelled))
    loss = float((log(total) + top - logits[picked, y]).sum()) + penalty
    residual = exps / total[:, None]
    residual[picked, y] -= 1.0
    grad = np.empty((rows, x.shape[1] + 1), order="F")
    grad[:, :-1] = residual.T @ x + l2 * weight
    grad[:, -1] = residual.sum(0)
    return loss, grad.ravel(order="F")


FULL_PRECONDITIONER_MAX_DIM = 4096  # above this, eigh of the covariance costs more than it saves


@dataclass(frozen=True)
class Preconditioner:
    """An exact change of variables that makes L-BFGS see a well-conditioned problem.

    The solver optimises u with W = (u * g) @ basis.T, where basis holds the eigenvectors of the
    features' covariance (or the identity, for very wide features) and g = (curvature * variance +
    lam)^-1/2 whiten each direction against the data term plus the penalty. The bias is centred: logits = (X - mean) W^T
    + beta. Every W is reachable, so the objective and its optimum are unchanged; only the path to it
    is shorter (unstandardised ReLU features otherwise cost L-BFGS ~5x more evaluations)."""

    mean: torch.Tensor
    variances: torch.Tensor
    basis: torch.Tensor | None

    @classmethod
    def of(cls, x: torch.Tensor) -> Preconditioner:
        mean = x.mean(0)
        if x.shape[1] > FULL_PRECONDITIONER_MAX_DIM:
            return cls(mean, (x.pow(2).mean(0) - mean.pow(2)).clamp_min(0), None)
        covariance = x.T @ x / len(x) - torch.outer(mean, mean)
        try:
            variances, basis = torch.linalg.eigh(covariance)
        except torch.linalg.LinAlgError:  # float32 LAPACK gives up on a low-rank covariance (10 rows, 1280 dims)
            try:
                variances, basis = (t.to(x.dtype) for t in torch.linalg.eigh(covariance.double()))
            except torch.linalg.LinAlgError:  # the per-feature variances: still exact, only a weaker preconditioner
                return cls(mean, covariance.diagonal().clamp_min(0), None)
        return cls(mean, variances.clamp_min(0), basis)

    def scales(self, lam: float, curvature: float = 1.0) -> torch.Tensor:
        return (curvature * self.variances + lam).rsqrt()

    def weight(self, u: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return u * g if self.basis is None else (u * g) @ self.basis.T

    def u_of(self, weight: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return weight / g if self.basis is None else (weight @ self.basis) / g

    def u_grad(self, weight_grad: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return weight_grad * g if self.basis is None else (weight_grad @ self.basis) * g


class TorchLogReg:
    """The fast path: full-batch L-BFGS in torch on the same objective, features resident on the
    device, in the whitened coordinates of `Preconditioner`. Stops by sklearn's rule, on the gradient
    in the original coordinates: when its largest entry (of the mean-scaled objective) falls below
    `tol`, or after `max_iter` iterations."""

    def __init__(self, task: str, num_classes: int, max_iter: int = 100, tol: float = 1e-4,
                 dtype: torch.dtype = torch.float32, device: str = "cpu"):
        self.task, self.num_classes = task, num_classes
        self.max_iter, self.tol, self.dtype, self.device = max_iter, tol, dtype, device
        self.binary = task == TaskType.MULTICLASS and num_classes == 2
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None
        self.iterations = 0
        self._converted: list[tuple[np.ndarray, torch.Tensor]] = []  # the sweep's train and val arrays
        self._preconditioned: tuple[np.ndarray, Preconditioner] | None = None

    def warm_copy(self) -> TorchLogReg:
        """An independent solver that starts its next fit from this one's solution. Only the weights are
        copied, not the feature tensors this one keeps on its device, so a refit on a GPU does not hold
        the features twice."""
        copied = TorchLogReg(self.task, self.num_classes, self.max_iter, self.tol, self.dtype, self.device)
        if self.weight is not None:
            copied.weight, copied.bias = self.weight.clone(), self.bias.clone()
        return copied

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        """Convert each array once and keep it on the device across the C sweep."""
        for array, tensor in self._converted:
            if array is x:
                return tensor
        with warnings.catch_warnings():  # cached features are read-only arrays; the solver only reads them
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            tensor = torch.as_tensor(np.asarray(x), dtype=self.dtype, device=self.device)
        self._converted = [*self._converted[-1:], (x, tensor)]
        return tensor

    def _preconditioner(self, x: np.ndarray) -> Preconditioner:
        if self._preconditioned is None or self._preconditioned[0] is not x:
            self._preconditioned = (x, Preconditioner.of(self._tensor(x)))
        return self._preconditioned[1]

    def _targets(self, y: np.ndarray) -> torch.Tensor:
        if self.task == TaskType.MULTILABEL:
            return torch.as_tensor(y, dtype=self.dtype, device=self.device)
        if self.binary:
            return torch.as_tensor(y, dtype=self.dtype, device=self.device)[:, None]
        return F.one_hot(torch.as_tensor(y, device=self.device).long(), self.num_classes).to(self.dtype)

    def fit(self, x: np.ndarray, y: np.ndarray, C: float) -> TorchLogReg:
        features, targets = self._tensor(x), self._targets(y)
        pre = self._preconditioner(x)
        outputs = 1 if self.binary else self.num_classes
        if self.weight is None or self.weight.shape != (outputs, features.shape[1]):
            self.weight = torch.zeros(outputs, features.shape[1], dtype=self.dtype, device=self.device)
            self.bias = torch.zeros(outputs, dtype=self.dtype, device=self.device)
        # the mean-scaled objective's penalty lam / 2 * ||W||^2; a binary vector is a 2-class softmax at 2C
        lam = 1.0 / ((1 if softmax_rows(self.task, self.num_classes) > 1 else 2) * C * features.shape[0])
        g = pre.scales(lam, self._curvature(features))
        softmax = not (self.binary or self.task == TaskType.MULTILABEL)

        def evaluate(u: torch.Tensor, beta: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor, float]:
            """Objective, its gradient in (u, beta), and the largest entry of sklearn's gradient."""
            weight = pre.weight(u, g)
            logits = torch.addmm(beta - weight @ pre.mean, features, weight.T)
            # The loss in float64: in float32, a well-fitted sample's loss (~1e-7) is lost in rounding,
            # and the line search then cannot see the objective decrease.
            exact = logits.double()
            if softmax:
                loss = (torch.logsumexp(exact, 1) - (exact * targets).sum(1)).sum() / len(features)
                residual = torch.softmax(logits, 1).sub_(targets).div_(len(features))
            else:
                loss = F.binary_cross_entropy_with_logits(exact, targets.double(), reduction="sum") / len(features)
                residual = torch.sigmoid(logits).sub_(targets).div_(len(features))
            data_grad = residual.T @ features  # d(mean loss)/dW with the uncentred features
            bias_grad = residual.sum(0)
            weight_grad = data_grad + lam * weight
            u_grad = pre.u_grad(weight_grad - torch.outer(bias_grad, pre.mean), g)
            objective = loss + 0.5 * lam * weight.double().pow(2).sum()  # below: one wait for a GPU, not three
            f, weight_max, bias_max = torch.stack([objective, weight_grad.abs().max().double(),
                                                   bias_grad.abs().max().double()]).tolist()
            return f, u_grad, bias_grad, max(weight_max, bias_max)

        u0 = pre.u_of(self.weight, g)
        beta0 = self.bias + self.weight @ pre.mean
        u, beta, self.iterations = minimise_lbfgs(evaluate, u0, beta0, self.max_iter, self.tol)
        self.weight = pre.weight(u, g)
        self.bias = beta - self.weight @ pre.mean
        return self

    def _curvature(self, features: torch.Tensor) -> float:
        """The loss's mean second derivative per logit, p(1 - p), at the warm start: the data term's
        Hessian is about this times the feature covariance (well-fitted samples add little curvature)."""
        with torch.no_grad():
            logits = torch.addmm(self.bias, features, self.weight.T)
            p = torch.sigmoid(logits) if self.binary or self.task == TaskType.MULTILABEL else torch.softmax(logits, 1)
            return max(float((p * (1 - p)).mean()), 1e-6)

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            scores = torch.addmm(self.bias, self._tensor(x), self.weight.T).double().cpu().numpy()
        return binary_scores(scores[:, 0]) if self.binary else scores


def softmax_rows(task: str, num_classes: int) -> int:
    """Rows of TorchLogReg's weight: one per class, or one binary vector for two-class and per-class
    (multi-label) problems."""
    return num_classes if task == TaskType.MULTICLASS and num_classes > 2 else 1


def minimise_lbfgs(evaluate, u: torch.Tensor, beta: torch.Tensor, max_iter: int, tol: float,
                   history: int = 10) -> tuple[torch.Tensor, torch.Tensor, int]:
    """L-BFGS (two-loop recursion, backtracking line search) over the pair (u, beta).
    `evaluate(u, beta)` returns (objective, grad u, grad beta, the stopping rule's gradient size).
    Returns the solution and the number of iterations taken.

    A step is accepted by Armijo's rule or, where float32 can no longer resolve the objective's decrease,
    by Hager and Zhang's approximate Wolfe test (objective not above its value beyond rounding, and the
    slope along the step flattened). When no step passes, the solution is at float32's floor: stop."""
    f, gu, gb, largest = evaluate(u, beta)
    pairs: list[tuple[torch.Tensor, torch.Tensor, float]] = []  # (s, y, 1 / y.s), flattened
    iteration = 0
    while largest > tol and iteration < max_iter:
        grad = torch.cat([gu.reshape(-1), gb])
        direction = -_two_loop(grad, pairs)
        slope = float(grad @ direction)
        if slope >= 0:  # not a descent direction (rounding): restart from steepest descent
            pairs.clear()
            direction, slope = -grad, -float(grad @ grad)
        step = 1.0 if pairs else min(1.0, 1.0 / float(grad.abs().sum()))
        for _ in range(30):
            du, db = (direction[:u.numel()] * step).view_as(u), direction[u.numel():] * step
            f_new, gu_new, gb_new, largest_new = evaluate(u + du, beta + db)
            grad_new = torch.cat([gu_new.reshape(-1), gb_new])
            if _acceptable(f, f_new, slope, float(grad_new @ direction), step):
                break
            step *= 0.5
        else:
            break
        iteration += 1
        s = torch.cat([du.reshape(-1), db])
        y = grad_new - grad
        ys = float(y @ s)
        if ys > 1e-10:
            pairs = [*pairs[-(history - 1):], (s, y, 1.0 / ys)]
        u, beta, f, gu, gb, largest = u + du, beta + db, f_new, gu_new, gb_new, largest_new
    return u, beta, iteration


def _acceptable(f: float, f_new: float, slope: float, slope_new: float, step: float) -> bool:
    armijo = f_new <= f + 1e-4 * step * slope
    approximate_wolfe = f_new <= f + 1e-6 * abs(f) and slope_new <= 0.8 * -slope and slope_new >= 0.9 * slope
    return armijo or approximate_wolfe


def _two_loop(grad: torch.Tensor, pairs: list[tuple[torch.Tensor, torch.Tensor, float]]) -> torch.Tensor:
    """The L-BFGS inverse-Hessian estimate applied to grad, scaled by the newest pair's s.y / y.y.

    Every scalar stays a tensor on grad's device, so a GPU is never waited for here (it was 2 x history
    + 1 times per iteration). The rounding is the Python-float version's: each coefficient is formed in
    float64 and applied in the vector's dtype as one multiply-add (`addcmul_` rounds as `sub_(alpha=)`
    did; bit-identical on this project's CPUs, tested)."""
    q = grad.clone()
    alphas = []
    for s, y, rho in reversed(pairs):
        alpha = rho * (s @ q).double()
        q.addcmul_(y, (-alpha).to(q.dtype))
        alphas.append(alpha)
    if pairs:
        s, y, rho = pairs[-1]
        q.mul_((1.0 / (rho * (y @ y).double())).to(q.dtype))
    for (s, y, rho), alpha in zip(pairs, reversed(alphas)):
        q.addcmul_(s, (alpha - rho * (y @ q).double()).to(q.dtype))
    return q
