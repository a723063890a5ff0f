"""Two L-BFGS logistic-regression solvers with one interface and one objective.

Objective (scikit-learn's, with its C): C * sum_i loss_i + 0.5 * ||W||^2, bias unpenalised; i.e.
mean loss + ||W||^2 / (2 C n). Multi-class problems use the multinomial loss, two-class problems a
single binary logistic vector (as sklearn does), multi-label problems one binary problem per class.
Both keep their last solution and start the next `fit` from it (warm start), as the reference's
`LogisticRegression(warm_start=True)` does across its C sweep.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from benchmark.vocab import TaskType


def binary_scores(s: np.ndarray) -> np.ndarray:
    """Two-class decision values as (N, 2) logits [0, s]: arg-max picks class 1 when s > 0, and their
    softmax is sklearn's predict_proba (sigmoid(s))."""
    return np.stack([np.zeros_like(s), s], axis=1)


class SklearnLogReg:
    """The reference path: sklearn LogisticRegression(solver="lbfgs", warm_start=True)."""

    def __init__(self, task: str, num_classes: int, max_iter: int = 100, tol: float = 1e-4):
        from sklearn.linear_model import LogisticRegression

        self.task, self.num_classes = task, num_classes
        self.clf = LogisticRegression(solver="lbfgs", max_iter=max_iter, tol=tol, warm_start=True)
        self.coefs: list[tuple[np.ndarray, np.ndarray]] = []

    def fit(self, x: np.ndarray, y: np.ndarray, C: float) -> SklearnLogReg:
        from sklearn.exceptions import ConvergenceWarning

        self.clf.set_params(C=C)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if self.task == TaskType.MULTILABEL:  # the reference refits one shared estimator class by class
                self.coefs = [self._fit_copy(x, y[:, c]) for c in range(y.shape[1])]
            else:
                self.coefs = [self._fit_copy(x, y)]
        return self

    def warm_copy(self) -> SklearnLogReg:
        """An independent solver that starts its next fit from this one's solution."""
        import copy

        return copy.deepcopy(self)

    def _fit_copy(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.clf.fit(x, y)
        return self.clf.coef_.copy(), self.clf.intercept_.copy()

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        if self.task == TaskType.MULTILABEL:
            return np.stack([x @ w[0] + b[0] for w, b in self.coefs], axis=1)
        w, b = self.coefs[0]
        scores = x @ w.T + b
        return binary_scores(scores[:, 0]) if scores.shape[1] == 1 else scores


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
        variances, basis = torch.linalg.eigh(covariance)
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
        lam = 1.0 / (C * features.shape[0])  # the mean-scaled objective's penalty: lam / 2 * ||W||^2
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
            largest = max(weight_grad.abs().max().item(), bias_grad.abs().max().item())
            u_grad = pre.u_grad(weight_grad - torch.outer(bias_grad, pre.mean), g)
            return (loss + 0.5 * lam * weight.double().pow(2).sum()).item(), u_grad, bias_grad, largest

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

    def objective(self, x: np.ndarray, y: np.ndarray, C: float) -> float:
        """sklearn's objective C * sum(loss) + 0.5||W||^2 at the current solution (for agreement checks)."""
        return sklearn_objective(self.decision_function(x), y, self.weight.cpu().numpy(), C, self.task)

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            scores = torch.addmm(self.bias, self._tensor(x), self.weight.T).double().cpu().numpy()
        return binary_scores(scores[:, 0]) if self.binary else scores


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
    """The L-BFGS inverse-Hessian estimate applied to grad, scaled by the newest pair's s.y / y.y."""
    q = grad.clone()
    alphas = []
    for s, y, rho in reversed(pairs):
        alpha = rho * float(s @ q)
        q.sub_(y, alpha=alpha)
        alphas.append(alpha)
    if pairs:
        s, y, rho = pairs[-1]
        q.mul_(1.0 / (rho * float(y @ y)))
    for (s, y, rho), alpha in zip(pairs, reversed(alphas)):
        q.add_(s, alpha=alpha - rho * float(y @ q))
    return q


def sklearn_objective(scores: np.ndarray, y: np.ndarray, weight: np.ndarray, C: float, task: str) -> float:
    """C * sum of per-sample losses + 0.5 ||W||^2, computed directly in float64."""
    scores = scores.astype(np.float64)
    if task == TaskType.MULTILABEL or scores.shape[1] == 2 and weight.shape[0] == 1:
        s = scores if task == TaskType.MULTILABEL else scores[:, 1:]
        t = y if task == TaskType.MULTILABEL else y[:, None]
        losses = np.logaddexp(0, s) - t * s
    else:
        shifted = scores - scores.max(1, keepdims=True)
        losses = np.log(np.exp(shifted).sum(1)) - shifted[np.arange(len(y)), y]
    return float(C * losses.sum() + 0.5 * np.sum(weight.astype(np.float64) ** 2))
