"""Newton-CG for the multinomial objective of `ConvergedLogReg`: mean cross-entropy + lam / 2 ||W||^2,
bias unpenalised, run until the gradient's norm (in the original coordinates, float64) is below `tol`.

Three things make it fast without changing the optimum:
- **Coordinates.** The features are centred and turned into their covariance's eigenbasis once per
  array (`Rotated`): an orthonormal change of variables, so the objective, the penalty and the gradient's
  norm are unchanged, and the Hessian is close to diagonal there, which the Jacobi preconditioner of the
  conjugate-gradient steps uses (its diagonal is exact, recomputed at every Newton step).
- **The softmax's redundant direction.** Adding one vector to every class's weights leaves the loss
  unchanged and only the penalty sees it, so at small lam the Hessian is nearly singular along it and CG
  crawls. The optimum has weights (and, by choice, biases) summing to zero over the classes, so the
  start is projected there and every CG direction stays there.
- **Inexact steps in float32.** Each Newton step's CG stops when its residual is a fixed fraction
  (`FORCING`) of the gradient, and its Hessian-vector products use float32 features. The objective, the
  gradient and the stopping rule stay float64, so where it stops is decided in float64; float32 only
  shapes the path there.

Near a tight tolerance a step lowers the mean loss by less than float64 resolves, and Armijo's test on
the loss then rejects good steps by rounding: there a step is accepted when it lowers the gradient's norm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

FORCING = 0.3  # a Newton step's CG stops at this fraction of the gradient's norm (measured: 0.1 to 0.3 best)
SPANNED = 1e-12  # a covariance eigenvalue below this fraction of the largest is rounding, not a direction
MAX_CG = 500  # per Newton step; never reached in any measured fit
LOSS_RESOLUTION = 1e-12  # below this relative change the summed float64 loss is rounding, not a descent test
MAX_HALVINGS = 40  # a line search that halves this often has hit float64's floor: the fit stops there


@dataclass(frozen=True)
class Rotated:
    """Features centred and expressed in their covariance's eigenbasis: z = (x - mean) @ basis.

    Directions the centred rows do not span (variance below SPANNED of the largest: raw pixels of a
    grayscale image copied to three channels span a third of theirs) are left out. No row moves along
    them, so only the penalty sees a weight there and the optimum's is zero, as `rotate` sets it."""

    mean: torch.Tensor  # (D,) float64
    basis: torch.Tensor  # (D, R) float64, orthonormal columns, R <= D
    z64: torch.Tensor  # (N, D): objective and gradient
    z32: torch.Tensor  # (N, D): Hessian-vector products
    z32_squared: torch.Tensor  # (N, D): the preconditioner's exact diagonal

    @classmethod
    def of(cls, x: np.ndarray) -> Rotated:
        features = torch.as_tensor(np.asarray(x, dtype=np.float64), device="cpu")
        mean = features.mean(0)
        centred = features - mean
        variances, basis = torch.linalg.eigh(centred.T @ centred)
        basis = basis[:, variances > SPANNED * variances[-1]]  # the directions the centred rows span
        z64 = centred @ basis
        z32 = z64.float()
        return cls(mean, basis, z64, z32, z32.square())

    def rotate(self, params: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(weights u, biases c) of original (rows, D + 1) parameters, projected to zero sum over classes
        (a move the loss cannot see and the penalty only gains from)."""
        weight, bias = torch.as_tensor(params[:, :-1], device="cpu"), torch.as_tensor(params[:, -1], device="cpu")
        u, c = weight @ self.basis, bias + weight @ self.mean
        return u - u.mean(0), c - c.mean(0)

    def unrotate(self, u: torch.Tensor, c: torch.Tensor) -> np.ndarray:
        weight = u @ self.basis.T
        return torch.cat([weight, (c - weight @ self.mean)[:, None]], 1).numpy()


@dataclass
class State:
    """The objective at one point and what the next Newton step needs from it."""

    u: torch.Tensor
    c: torch.Tensor
    loss: float
    probabilities: torch.Tensor  # (N, rows) float64
    grad_u: torch.Tensor
    grad_c: torch.Tensor
    norm: float  # the gradient's norm in the original coordinates: the stopping rule


def evaluate(rotated: Rotated, targets: torch.Tensor, lam: float, u: torch.Tensor, c: torch.Tensor) -> State:
    n = len(targets)
    log_p = torch.log_softmax(torch.addmm(c, rotated.z64, u.T), 1)
    loss = float(-(log_p * targets).sum() / n + 0.5 * lam * u.square().sum())
    probabilities = log_p.exp()
    residual = (probabilities - targets) / n
    grad_u, grad_c = torch.addmm(u, residual.T, rotated.z64, alpha=1.0, beta=lam), residual.sum(0)
    # the weights' gradient in the original coordinates, turned into the eigenbasis: same norm
    original = grad_u + torch.outer(grad_c, rotated.mean @ rotated.basis)
    norm = math.sqrt(float(original.square().sum() + grad_c.square().sum()))
    return State(u, c, loss, probabilities, grad_u, grad_c, norm)


def hessian_vector(rotated: Rotated, p32: torch.Tensor, lam: float, vu: torch.Tensor, vc: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """H v with float32 products: sum_i z_i^T (diag(p_i) - p_i p_i^T) (V z_i) / N, plus lam on the weights."""
    change = torch.addmm(vc.float(), rotated.z32, vu.float().T)
    weighted = p32 * change
    curvature = weighted - p32 * weighted.sum(1, keepdim=True)
    n = len(p32)
    return (curvature.T @ rotated.z32).double() / n + lam * vu, curvature.sum(0).double() / n


def zero_sum(a: torch.Tensor) -> torch.Tensor:
    return a - a.mean(0)


def newton_direction(rotated: Rotated, state: State, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Preconditioned CG on H d = -g, inside the zero-sum subspace, to FORCING x |g|."""
    p32 = state.probabilities.float()
    curvature = p32 * (1 - p32) / len(p32)
    diag_u = (curvature.T @ rotated.z32_squared).double() + lam
    diag_c = curvature.sum(0).double().clamp_min(1e-300)
    du, dc = torch.zeros_like(state.u), torch.zeros_like(state.c)
    ru, rc = -state.grad_u, -state.grad_c
    zu, zc = zero_sum(ru / diag_u), zero_sum(rc / diag_c)
    pu, pc = zu, zc
    rz = float((ru * zu).sum() + (rc * zc).sum())
    target = FORCING * math.sqrt(float(ru.square().sum() + rc.square().sum()))
    for _ in range(MAX_CG):
        hu, hc = hessian_vector(rotated, p32, lam, pu, pc)
        curvature_along = float((pu * hu).sum() + (pc * hc).sum())
        if curvature_along <= 0:  # rounding: the objective is convex
            break
        alpha = rz / curvature_along
        du, dc, ru, rc = du + alpha * pu, dc + alpha * pc, ru - alpha * hu, rc - alpha * hc
        if math.sqrt(float(ru.square().sum() + rc.square().sum())) <= target:
            break
        zu, zc = zero_sum(ru / diag_u), zero_sum(rc / diag_c)
        rz, previous = float((ru * zu).sum() + (rc * zc).sum()), rz
        if rz <= 0:  # the residual vanished in rounding
            break
        pu, pc = zu + (rz / previous) * pu, zc + (rz / previous) * pc
    if not (du.abs().sum() + dc.abs().sum()) > 0:  # no CG step taken: steepest descent
        return -state.grad_u, -state.grad_c
    return du, dc


def line_search(rotated: Rotated, targets: torch.Tensor, lam: float, state: State,
                direction: tuple[torch.Tensor, torch.Tensor]) -> State | None:
    """The first of steps 1, 1/2, 1/4, ... that passes Armijo's rule; None when none does."""
    du, dc = direction
    slope = float((state.grad_u * du).sum() + (state.grad_c * dc).sum())
    step = 1.0
    for _ in range(MAX_HALVINGS):
        trial = evaluate(rotated, targets, lam, state.u + step * du, state.c + step * dc)
        if trial.loss <= state.loss + 1e-4 * step * slope:
            return trial
        if -step * slope < LOSS_RESOLUTION * abs(state.loss) and trial.norm < state.norm:
            return trial  # a change the float64 loss cannot resolve: judged by the gradient, the stopping rule's measure
        step /= 2
    return None


def newton_cg(rotated: Rotated, y: np.ndarray, rows: int, start: np.ndarray, lam: float, tol: float,
              max_iter: int) -> tuple[np.ndarray, int]:
    """Minimise from `start` ((rows, D + 1), original coordinates): (solution, Newton steps taken)."""
    targets = torch.nn.functional.one_hot(torch.as_tensor(y, device="cpu").long(), rows).double()
    state = evaluate(rotated, targets, lam, *rotated.rotate(start))
    steps = 0
    while state.norm >= tol and steps < max_iter:
        moved = line_search(rotated, targets, lam, state, newton_direction(rotated, state, lam))
        steps += 1
        if moved is None:
            break
        state = moved
    return rotated.unrotate(state.u, state.c), steps
