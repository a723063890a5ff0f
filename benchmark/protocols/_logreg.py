"""Two L-BFGS logistic-regression solvers with one interface and one objective.

Objective (scikit-learn's, with its C): C * sum_i loss_i + 0.5 * ||W||^2, bias unpenalised; i.e.
mean loss + ||W||^2 / (2 C n). Multi-class problems use the multinomial loss, two-class problems a
single binary logistic vector (as sklearn does), multi-label problems one binary problem per class.
Both keep their last solution and start the next `fit` from it (warm start), as the reference's
`LogisticRegression(warm_start=True)` does across its C sweep.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


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
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        self.clf.set_params(C=C)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if self.task == "multilabel":  # the reference refits one shared estimator class by class
                self.coefs = [self._fit_copy(x, y[:, c]) for c in range(y.shape[1])]
            else:
                self.coefs = [self._fit_copy(x, y)]
        return self

    def _fit_copy(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.clf.fit(x, y)
        return self.clf.coef_.copy(), self.clf.intercept_.copy()

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        if self.task == "multilabel":
            return np.stack([x @ w[0] + b[0] for w, b in self.coefs], axis=1)
        w, b = self.coefs[0]
        scores = x @ w.T + b
        return binary_scores(scores[:, 0]) if scores.shape[1] == 1 else scores


class TorchLogReg:
    """The fast path: full-batch torch.optim.LBFGS (strong Wolfe line search) on the same objective,
    features resident on the device. Stops when the largest gradient entry of the mean-scaled
    objective falls below `tol` (sklearn's rule) or after `max_iter` iterations."""

    def __init__(self, task: str, num_classes: int, max_iter: int = 100, tol: float = 1e-4,
                 dtype: torch.dtype = torch.float32, device: str = "cpu"):
        self.task, self.num_classes = task, num_classes
        self.max_iter, self.tol, self.dtype, self.device = max_iter, tol, dtype, device
        self.binary = task == "multiclass" and num_classes == 2
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None
        self._converted: tuple[np.ndarray, torch.Tensor] | None = None

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        """Convert features once per array and keep them on the device across the C sweep."""
        if self._converted is None or self._converted[0] is not x:
            self._converted = (x, torch.tensor(np.asarray(x), dtype=self.dtype, device=self.device))
        return self._converted[1]

    def _targets(self, y: np.ndarray) -> torch.Tensor:
        if self.task == "multilabel":
            return torch.as_tensor(y, dtype=self.dtype, device=self.device)
        if self.binary:
            return torch.as_tensor(y, dtype=self.dtype, device=self.device)[:, None]
        return torch.as_tensor(y, dtype=torch.long, device=self.device)

    def fit(self, x: np.ndarray, y: np.ndarray, C: float) -> TorchLogReg:
        features, targets = self._tensor(x), self._targets(y)
        outputs = 1 if self.binary else self.num_classes
        if self.weight is None or self.weight.shape != (outputs, features.shape[1]):
            self.weight = torch.zeros(outputs, features.shape[1], dtype=self.dtype, device=self.device)
            self.bias = torch.zeros(outputs, dtype=self.dtype, device=self.device)
        weight = self.weight.clone().requires_grad_(True)
        bias = self.bias.clone().requires_grad_(True)
        penalty = 0.5 / (C * features.shape[0])
        multinomial = not (self.binary or self.task == "multilabel")
        optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=self.max_iter, tolerance_grad=self.tol,
                                      tolerance_change=1e-12, history_size=10, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            logits = torch.addmm(bias, features, weight.T)
            if multinomial:
                loss = F.cross_entropy(logits, targets)
            else:
                loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / len(features)
            loss = loss + penalty * weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        self.weight, self.bias = weight.detach(), bias.detach()
        return self

    def objective(self, x: np.ndarray, y: np.ndarray, C: float) -> float:
        """sklearn's objective C * sum(loss) + 0.5||W||^2 at the current solution (for agreement checks)."""
        return sklearn_objective(self.decision_function(x), y, self.weight.cpu().numpy(), C, self.task)

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            scores = torch.addmm(self.bias, self._tensor(x), self.weight.T).double().cpu().numpy()
        return binary_scores(scores[:, 0]) if self.binary else scores


def sklearn_objective(scores: np.ndarray, y: np.ndarray, weight: np.ndarray, C: float, task: str) -> float:
    """C * sum of per-sample losses + 0.5 ||W||^2, computed directly in float64."""
    scores = scores.astype(np.float64)
    if task == "multilabel" or scores.shape[1] == 2 and weight.shape[0] == 1:
        s = scores if task == "multilabel" else scores[:, 1:]
        t = y if task == "multilabel" else y[:, None]
        losses = np.logaddexp(0, s) - t * s
    else:
        shifted = scores - scores.max(1, keepdims=True)
        losses = np.log(np.exp(shifted).sum(1)) - shifted[np.arange(len(y)), y]
    return float(C * losses.sum() + 0.5 * np.sum(weight.astype(np.float64) ** 2))
