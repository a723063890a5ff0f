"""Label-free representation quality of cached features: no labels, no training.

- RankMe (Garrido et al., ICML 2023, eq. 1): exp(-sum_k p_k log p_k) with p_k = sigma_k / ||sigma||_1 + eps,
  sigma the singular values of the (N, D) embedding matrix, as the paper defines it (not centred).
  Higher: more dimensions in use; the paper finds it tracks downstream accuracy within a method.
- alpha-ReQ (Agrawal et al., NeurIPS 2022): the decay exponent alpha of the eigenspectrum of the
  features' covariance, lambda_i ~ i^-alpha, fitted by least squares on log lambda vs log i over the
  eigenvalues above 1e-10 of the largest. The paper finds alpha near 1 best (no direction).
- TwoNN intrinsic dimension (Facco et al., Sci. Rep. 2017): mu_i = r2 / r1, the ratio of each point's
  second to first nearest-neighbour distance, follows a Pareto law with exponent d; the maximum-
  likelihood estimate is d = n / sum_i log mu_i (points with a duplicate, r1 = 0, are left out).
  Features are used as they are (not normalised).

All three come from one split's features (`split`, default train), at most `max_samples` rows drawn
without replacement with `seed`; the row records which split and how many. `measure` picks the headline;
the details hold all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import numpy as np

from benchmark.params import CheckedParams, Constraints, Interval, Options
from benchmark.protocols import PROTOCOLS
from benchmark.protocols.base import FeatureTask, Protocol, ProtocolResult, Rows, check_finite
from benchmark.vocab import Metric, TaskType

RANKME_EPS = 1e-7  # the paper's epsilon


def squared_singular_values(x: np.ndarray) -> np.ndarray:
    """sigma^2 of an (N, D) matrix, descending, from the eigenvalues of the smaller Gram matrix (float64):
    much cheaper than an SVD of N x D, and the same numbers up to rounding."""
    gram = x.T @ x if x.shape[1] <= x.shape[0] else x @ x.T
    return np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None)


def rankme(features: np.ndarray) -> float:
    singular = np.sqrt(squared_singular_values(np.asarray(features, dtype=np.float64)))
    p = singular / max(singular.sum(), np.finfo(float).tiny) + RANKME_EPS
    return float(np.exp(-(p * np.log(p)).sum()))


def alpha_req(features: np.ndarray, floor: float = 1e-10) -> float:
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(0)
    eigenvalues = squared_singular_values(x) / max(len(x) - 1, 1)  # the covariance spectrum, descending
    kept = eigenvalues[eigenvalues > floor * eigenvalues[0]]
    if len(kept) < 2:
        return float("nan")
    slope = np.polyfit(np.log(np.arange(1, len(kept) + 1)), np.log(kept), 1)[0]
    return float(-slope)


def twonn_dimension(features: np.ndarray) -> float:
    x = np.asarray(features, dtype=np.float64)
    squared = (x * x).sum(1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2.0 * x @ x.T, 0.0)
    np.fill_diagonal(distances, np.inf)
    nearest = np.sqrt(np.partition(distances, 1, axis=1)[:, :2])
    r1, r2 = nearest[:, 0], nearest[:, 1]
    usable = r1 > 1e-6 * np.sqrt(squared.max())  # duplicates: r1 is 0 up to the rounding of the expansion
    log_mu = np.log(r2[usable] / r1[usable])
    return float(usable.sum() / log_mu.sum()) if log_mu.sum() > 0 else float("nan")


class Measure(StrEnum):
    RANKME = "rankme"
    ALPHA_REQ = "alpha_req"
    TWONN = "twonn"


MEASURES = {Measure.RANKME: (rankme, Metric.RANKME), Measure.ALPHA_REQ: (alpha_req, Metric.ALPHA_REQ),
            Measure.TWONN: (twonn_dimension, Metric.TWONN)}


class Split(StrEnum):
    TRAIN = "train"
    TEST = "test"


@PROTOCOLS.register
class Quality(Protocol):
    name = "quality"
    version = "1.0"
    components = ()  # no labels, no scoring rule
    tasks = (TaskType.MULTICLASS, TaskType.MULTILABEL)

    @dataclass(frozen=True)
    class Params(CheckedParams):
        measure: Measure = Measure.RANKME
        split: Split = Split.TRAIN
        max_samples: int = 2048
        seed: int = 0
        constraints: ClassVar[Constraints] = {
            "measure": Options(*Measure), "split": Options(*Split), "max_samples": Interval(int, 3, 100_000),
            "seed": Interval(int, 0)}

    def evaluate(self, data: FeatureTask) -> ProtocolResult:
        check_finite(data)
        p = self.params
        key = ("quality", p.split, p.max_samples, p.seed)  # the three measures of one sample, computed once
        values = data.shared.get_or_compute(key, lambda: all_measures(data, p))
        return ProtocolResult(value=values[str(p.measure)], metric=MEASURES[p.measure][1], details=dict(values))


def all_measures(data: FeatureTask, p: Quality.Params) -> dict[str, float | int | str]:
    """Every measure on the same sample, so the columns of one suite share one computation."""
    rows = Rows([data.train.x, data.val.x] if p.split == Split.TRAIN else [data.test.x])
    if len(rows) > p.max_samples:
        features = rows[np.sort(np.random.default_rng(p.seed).choice(len(rows), p.max_samples, replace=False))]
    else:
        features = rows[:]
    return {**{str(m): fn(features) for m, (fn, _) in MEASURES.items()}, "split": str(p.split),
            "samples": len(features), "dimensions": int(features.shape[1])}
