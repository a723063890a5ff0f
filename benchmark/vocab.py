"""The project's shared vocabularies. Each is a StrEnum, so a member equals its text ("pooled") and
YAML, JSON and the results store keep plain strings, while code gets one spelling checked by Python."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from benchmark.errors import UserError
from benchmark.registry import unknown_name_message


class FeatureKind(StrEnum):
    """What an encoder can give a protocol (its capabilities) and what a protocol consumes."""

    POOLED = "pooled"  # (N, D) features
    DENSE = "dense"  # (N, C, h, w) feature maps
    TEXT = "text"  # a text tower, for zero-shot
    MODEL = "model"  # the trainable network itself, for fine-tuning


class EncoderWork(StrEnum):
    """What a cell asks of the encoder, which is what its cost is counted in (`cost`, `plan --estimate`)."""

    FEATURES = "features"  # reads cached features: one extraction per (dataset, preprocessing), shared
    FORWARD = "forward"  # runs the frozen encoder on its own images (linear_sgd re-encoding augmented images)
    TRAINING = "training"  # trains the encoder (fine-tuning): forward and backward passes


class TaskType(StrEnum):
    """What a dataset's labels are."""

    MULTICLASS = "multiclass"  # one class index per image
    MULTILABEL = "multilabel"  # a multi-hot row per image
    SEGMENTATION = "segmentation"  # a mask per image, 255 = void
    INSTANCE = "instance_retrieval"  # train = database (labels: own index), test = queries (labels: relevance rows)
    IMAGE_TEXT = "image_text"  # images with captions: each image's label is its row of caption indices (-1 pads)


class Metric(StrEnum):
    """The headline numbers a row can report (scoring functions live in `benchmark.metrics`)."""

    TOP1 = "top1"
    MEAN_PER_CLASS = "mean_per_class"
    VOC_MAP = "voc_map"
    MIOU = "miou"
    ACCURACY = "accuracy"  # few-shot: mean episode accuracy
    ECE = "ece"  # calibration error: lower is better
    RECALL_AT_1 = "recall@1"  # class-based retrieval
    REVISITED_MAP = "revisited_map"  # instance retrieval, revisited Oxford/Paris (Medium protocol)
    MEAN_RECALL = "mean_recall"  # image-text retrieval: recall@1/5/10 both ways, averaged (RSUM / 6)
    RANKME = "rankme"  # label-free quality (benchmark.protocols.quality): diagnostics, not scores
    ALPHA_REQ = "alpha_req"
    TWONN = "twonn"

    @property
    def spec(self) -> MetricSpec:
        return METRIC_SPECS[self]


class Direction(StrEnum):
    """Which way a metric is better: what tables, ranks, bests and comparisons read (`MetricSpec`)."""

    HIGHER = "higher is better"
    LOWER = "lower is better"
    NONE = "label-free, no better direction"  # diagnostics: no best, no rank, no win over a baseline


@dataclass(frozen=True)
class MetricSpec:
    """A metric registered once with its direction (as lm-eval's MetricSpec): every ranking, table,
    leaderboard and summary reads `direction` from `METRIC_SPECS`, never a rule of its own."""

    metric: Metric
    direction: Direction

    @property
    def higher_is_better(self) -> bool | None:
        return None if self.direction is Direction.NONE else self.direction is Direction.HIGHER

    @property
    def lower_is_better(self) -> bool:
        return self.direction is Direction.LOWER

    @property
    def is_score(self) -> bool:
        return self.direction is not Direction.NONE

    def better(self, a: float, b: float) -> bool:
        """Whether value a beats value b (never, for a diagnostic)."""
        return self.is_score and (a < b if self.lower_is_better else a > b)


METRIC_SPECS = {m: MetricSpec(m, Direction.LOWER if m is Metric.ECE else Direction.HIGHER) for m in Metric} | {
    m: MetricSpec(m, Direction.NONE) for m in (Metric.RANKME, Metric.ALPHA_REQ, Metric.TWONN)}  # alpha-ReQ: best near 1


def metric_spec(name: str) -> MetricSpec | None:
    """The spec of a metric named in a row (None for a name this version does not know)."""
    return METRIC_SPECS.get(Metric(name)) if name in METRIC_SPECS else None


def direction_of(metrics: Iterable[str]) -> Direction:
    """One column's direction from its rows' metrics: lower if any is lower-is-better, none if any is a
    diagnostic, else higher."""
    directions = {spec.direction for spec in map(metric_spec, set(metrics)) if spec is not None}
    return next((d for d in (Direction.NONE, Direction.LOWER) if d in directions), Direction.HIGHER)


class ValSplit(StrEnum):
    """Where model selection's validation data came from (recorded in every row)."""

    OFFICIAL = "official"  # the dataset's own val split
    HOLDOUT = "holdout20"  # 20% of train, shuffled with np.random.seed(row's seed); seed 0 is the reference's
    NONE = "none"  # a single pool (few-shot) or no selection


def parse(enum: type[StrEnum], value: object, what: str) -> StrEnum:
    """`value` as a member of `enum`, or one error naming the valid spellings."""
    try:
        return enum(value)
    except ValueError:
        raise UserError(unknown_name_message(what, str(value), [m.value for m in enum])) from None
