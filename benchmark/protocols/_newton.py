"""Newton-CG for the multinomial objective of `ConvergedLogReg`: mean cross-entropy + lam / 2 ||W||^2,
bias unpenalised, run until the gradient's norm (in the original coordinates, float64) is below `tol`.

Four things make it fast without changing the optimum:
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
- **Many fits at once.** A sweep's fits (one per C) share the rows, so they run in lockstep: each
  Hessian-vector product is one GEMM each way for every fit still in CG, and reads the rows once where
  one fit at a time would read them once per fit (a single fit's product is memory-bound on large rows).
  Each fit keeps its own CG step lengths, line search and stopping rule.

Near a tight tolerance a step lowers the mean loss by less than float64 resolves, and Armijo's test on
the loss then rejects good steps by rounding: there a step is accepted when it lowers the gradient's norm.
"""

from __future__ import annotations

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
    """The objective of F fits (one per penalty) at one point each, and what their next Newton step needs.
    Every tensor has the fits as its first dimension; a fit's numbers never mix with another's."""

    u: torch.Tensor  # (F, K, R)
    c: torch.Tensor  # (F, K)
    loss: torch.Tensor  # (F,) float64
    probabilities: torch.Tensor  # (N, F, K) float64
    grad_u: torch.Tensor
    grad_c: torch.Tensor
    norm: torch.Tensor  # (F,): the gradient's norm in the original coordinates: the stopping rule

    def take(self, fits: torch.Tensor) -> State:
        """The fits at the indices `fits`."""
        return State(self.u[fits], self.c[fits], self.loss[fits], self.probabilities[:, fits], self.grad_u[fits],
                     self.grad_c[fits], self.norm[fits])

    def put(self, fits: torch.Tensor, other: State) -> None:
        """Overwrite the fits at the indices `fits` with `other`'s (in place)."""
        for name in ("u", "c", "loss", "grad_u", "grad_c", "norm"):
            getattr(self, name)[fits] = getattr(other, name)
        self.probabilities[:, fits] = other.probabilities


def batched(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, R) rows times (F, K, R) weights: (N, F, K), as one GEMM over all fits."""
    return (a @ b.reshape(-1, b.shape[-1]).T).reshape(len(a), *b.shape[:2])


def back(per_row: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(N, F, K) per-row numbers times (N, R) rows, summed over rows: (F, K, R), as one GEMM."""
    f, k = per_row.shape[1:]
    return (per_row.reshape(len(rows), f * k).T @ rows).reshape(f, k, -1)


def evaluate(rotated: Rotated, targets: torch.Tensor, lam: torch.Tensor, u: torch.Tensor, c: torch.Tensor) -> State:
    n = len(targets)
    log_p = torch.log_softmax(batched(rotated.z64, u) + c, 2)
    loss = -(log_p * targets[:, None]).sum((0, 2)) / n + 0.5 * lam * u.square().sum((1, 2))
    probabilities = log_p.exp()
    residual = (probabilities - targets[:, None]) / n
    grad_u, grad_c = back(residual, rotated.z64) + lam[:, None, None] * u, residual.sum(0)
    # the weights' gradient in the original coordinates, turned into the eigenbasis: same norm
    original = grad_u + grad_c[:, :, None] * (rotated.mean @ rotated.basis)
    norm = (original.square().sum((1, 2)) + grad_c.square().sum(1)).sqrt()
    return State(u, c, loss, probabilities, grad_u, grad_c, norm)


def hessian_vector(rotated: Rotated, p32: torch.Tensor, lam: torch.Tensor, vu: torch.Tensor, vc: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """H v of every fit with float32 products: sum_i z_i^T (diag(p_i) - p_i p_i^T) (V z_i) / N, plus lam
    on the weights. All fits share the rows, so their products are one GEMM each way: the rows are read
    twice per call however many fits there are (a single fit's HVP is memory-bound)."""
    change = batched(rotated.z32, vu.float()) + vc.float()
    weighted = p32 * change
    curvature = weighted - p32 * weighted.sum(2, keepdim=True)
    n = len(p32)
    return back(curvature, rotated.z32).double() / n + lam[:, None, None] * vu, curvature.sum(0).double() / n


def zero_sum(a: torch.Tensor) -> torch.Tensor:
    return a - a.mean(1, keepdim=True)


def dot(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Per-fit inner products of (weights, biases) pairs: (F,)."""
    return (a[0] * b[0]).sum((1, 2)) + (a[1] * b[1]).sum(1)


@dataclass
class ConjugateGradients:
    """Preconditioned CG on H d = -g for F fits in lockstep: each fit has its own step lengths and stops on
    its own. The arrays hold the running fits only (`ids`: their places among the F); a fit that stops
    leaves them, its direction written to `out`, so the Hessian products never carry a finished fit."""

    rotated: Rotated
    p32: torch.Tensor  # (N, F', K)
    lam: torch.Tensor
    diag: tuple[torch.Tensor, torch.Tensor]  # Jacobi: the Hessian's exact diagonal, (F', K, R) and (F', K)
    d: tuple[torch.Tensor, torch.Tensor]  # the directions so far
    r: tuple[torch.Tensor, torch.Tensor]  # the residuals
    p: tuple[torch.Tensor, torch.Tensor]  # the search directions
    rz: torch.Tensor  # (F',) r . M^-1 r
    target: torch.Tensor  # (F',) FORCING x |g|
    ids: torch.Tensor  # (F',) long
    out: tuple[torch.Tensor, torch.Tensor]  # (F, K, R) and (F, K): the directions of the stopped fits

    def step(self) -> None:
        """One CG iteration of every running fit."""
        h = hessian_vector(self.rotated, self.p32, self.lam, *self.p)
        along = dot(self.p, h)
        convex = along > 0  # otherwise rounding: the objective is convex
        alpha = torch.where(convex, self.rz / torch.where(convex, along, 1.0), 0.0)
        self.d = tuple(d + per_fit(alpha, d) * p for d, p in zip(self.d, self.p))
        self.r = tuple(r - per_fit(alpha, r) * hp for r, hp in zip(self.r, h))
        z = (zero_sum(self.r[0] / self.diag[0]), zero_sum(self.r[1] / self.diag[1]))
        rz = dot(self.r, z)
        going = convex & (dot(self.r, self.r).sqrt() > self.target) & (rz > 0)  # rz <= 0: r vanished in rounding
        beta = rz / self.rz
        self.p = tuple(zi + per_fit(beta, zi) * p for zi, p in zip(z, self.p))
        self.rz = rz
        if not going.all():
            self.stop(~going)

    def stop(self, stopped: torch.Tensor) -> None:
        """Write the stopped fits' directions out and keep only the running fits' arrays."""
        for out, d in zip(self.out, self.d):
            out[self.ids[stopped]] = d[stopped]
        keep = ~stopped
        for name in ("diag", "d", "r", "p"):
            setattr(self, name, tuple(t[keep] for t in getattr(self, name)))
        self.p32, self.lam, self.rz = self.p32[:, keep], self.lam[keep], self.rz[keep]
        self.target, self.ids = self.target[keep], self.ids[keep]


def per_fit(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(F,) per-fit numbers shaped to broadcast against `like` ((F, ...))."""
    return values.reshape(-1, *[1] * (like.dim() - 1))


def newton_direction(rotated: Rotated, state: State, lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Preconditioned CG on H d = -g for every fit, inside the zero-sum subspace, to FORCING x |g|."""
    p32 = state.probabilities.float()
    curvature = p32 * (1 - p32) / len(p32)
    diag = (back(curvature, rotated.z32_squared).double() + lam[:, None, None],
            curvature.sum(0).double().clamp_min(1e-300))
    r = (-state.grad_u, -state.grad_c)
    z = (zero_sum(r[0] / diag[0]), zero_sum(r[1] / diag[1]))
    zeros = (torch.zeros_like(state.u), torch.zeros_like(state.c))
    cg = ConjugateGradients(rotated, p32, lam, diag, zeros, r, z, dot(r, z), FORCING * dot(r, r).sqrt(),
                            torch.arange(len(lam), device="cpu"), (zeros[0].clone(), zeros[1].clone()))
    for _ in range(MAX_CG):
        if not len(cg.ids):
            break
        cg.step()
    cg.stop(torch.ones(len(cg.ids), dtype=torch.bool, device="cpu"))
    du, dc = cg.out
    none = (du.abs().sum((1, 2)) + dc.abs().sum(1)) == 0  # no CG step taken: steepest descent
    return torch.where(none[:, None, None], -state.grad_u, du), torch.where(none[:, None], -state.grad_c, dc)


def line_search(rotated: Rotated, targets: torch.Tensor, lam: torch.Tensor, state: State,
                direction: tuple[torch.Tensor, torch.Tensor]) -> tuple[State, torch.Tensor]:
    """Per fit, the first of steps 1, 1/2, 1/4, ... that passes Armijo's rule: (the new state, which fits
    found none; those keep their old point)."""
    du, dc = direction
    slope = dot((state.grad_u, state.grad_c), direction)
    step = torch.ones(len(lam), dtype=torch.float64, device="cpu")
    moved = State(*(t.clone() for t in (state.u, state.c, state.loss, state.probabilities, state.grad_u,
                                        state.grad_c, state.norm)))
    searching = torch.ones(len(lam), dtype=torch.bool, device="cpu")
    for _ in range(MAX_HALVINGS):
        fits = searching.nonzero()[:, 0]
        if not len(fits):
            break
        s = step[fits]
        trial = evaluate(rotated, targets, lam[fits], state.u[fits] + s[:, None, None] * du[fits],
                         state.c[fits] + s[:, None] * dc[fits])
        armijo = trial.loss <= state.loss[fits] + 1e-4 * s * slope[fits]
        # a change the float64 loss cannot resolve: judged by the gradient, the stopping rule's measure
        unresolved = (-s * slope[fits] < LOSS_RESOLUTION * state.loss[fits].abs()) & (trial.norm < state.norm[fits])
        accepted = armijo | unresolved
        moved.put(fits[accepted], trial.take(accepted.nonzero()[:, 0]))
        searching[fits[accepted]] = False
        step[fits] /= 2
    return moved, searching


def newton_cg_many(rotated: Rotated, y: np.ndarray, rows: int, starts: np.ndarray, lams: list[float], tol: float,
                   max_iter: int) -> tuple[list[np.ndarray], list[int]]:
    """Minimise one objective per penalty in `lams`, each from its start ((F, rows, D + 1), original
    coordinates), all in lockstep so that every Hessian product reads the rows once for all the fits then
    solving for a direction: (solutions, Newton steps each took). Each fit stops on its own gradient; its
    path and optimum are its own (the batch changes only the order of float32 sums in the products)."""
    targets = torch.nn.functional.one_hot(torch.as_tensor(y, device="cpu").long(), rows).double()
    lam = torch.tensor(lams, dtype=torch.float64, device="cpu")
    u, c = zip(*(rotated.rotate(start) for start in starts))
    state = evaluate(rotated, targets, lam, torch.stack(u), torch.stack(c))
    steps = torch.zeros(len(lams), dtype=torch.long, device="cpu")
    stuck = torch.zeros(len(lams), dtype=torch.bool, device="cpu")
    while True:
        fits = ((state.norm >= tol) & (steps < max_iter) & ~stuck).nonzero()[:, 0]
        if not len(fits):
            break
        part = state.take(fits)
        moved, failed = line_search(rotated, targets, lam[fits], part, newton_direction(rotated, part, lam[fits]))
        state.put(fits, moved)
        steps[fits] += 1
        stuck[fits] = failed
    return [rotated.unrotate(state.u[f], state.c[f]) for f in range(len(lams))], steps.tolist()


def newton_cg(rotated: Rotated, y: np.ndarray, rows: int, start: np.ndarray, lam: float, tol: float,
              max_iter: int) -> tuple[np.ndarray, int]:
    """Minimise from `start` ((rows, D + 1), original coordinates): (solution, Newton steps taken)."""
    solutions, steps = newton_cg_many(rotated, y, rows, start[None], [lam], tol, max_iter)
    return solutions[0], steps[0]
