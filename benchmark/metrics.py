"""Dataset metrics, in percent, as the reference computes them."""

from __future__ import annotations

import numpy as np

from benchmark.errors import UserError
from benchmark.identity import Component
from benchmark.vocab import Metric, parse

SCORING = Component("scoring", "1")  # the scoring functions below: bump when a headline number's rule changes
VOID = 255  # the ignored label of segmentation masks


def top1(labels: np.ndarray, predictions: np.ndarray) -> float:
    return 100.0 * float(np.mean(labels == predictions))


def mean_per_class(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Mean over the classes present in `labels` of per-class recall (the confusion-matrix diagonal
    over its row sums). The reference's confusion matrix also has a row for a class that is predicted
    but has no test example; that row is 0/0 and makes its mean NaN. Whenever the reference's value is
    a number, it is this one."""
    recalls = [np.mean(predictions[labels == cls] == cls) for cls in np.unique(labels)]
    return 100.0 * float(np.mean(recalls))


def voc11_average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """PASCAL VOC 2007 11-point interpolated AP of one class: mean over recall thresholds t in
    {0, 0.1, ..., 1} of the best precision at recall >= t (0 when no point reaches t).

    A class without positives has no recall; the reference (sklearn's precision_recall_curve, then
    ssl-transfer's voc_ap) still finds its closing point (recall 0, precision 1) at t = 0 and nothing
    above, so it scores 1/11, and so do we."""
    order = np.argsort(-scores, kind="stable")
    hits = labels[order].astype(bool)
    positives = hits.sum()
    if positives == 0:
        return 1.0 / 11.0
    # one precision/recall point per distinct score threshold, as sklearn's precision_recall_curve
    last_of_run = np.r_[np.diff(scores[order]) != 0, True]
    true_pos = np.cumsum(hits)[last_of_run]
    predicted = (np.arange(1, len(hits) + 1))[last_of_run]
    # sklearn's curve (which the reference uses) ends with the point precision=1, recall=0
    precision = np.r_[true_pos / predicted, 1.0]
    recall = np.r_[true_pos / positives, 0.0]
    return float(np.mean([precision[recall >= t].max() if np.any(recall >= t) else 0.0
                          for t in np.linspace(0, 1, 11)]))


def voc_map(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean over classes of the 11-point AP (multi-label: labels and scores are N x classes)."""
    return 100.0 * float(np.mean([voc11_average_precision(labels[:, c], scores[:, c])
                                  for c in range(labels.shape[1])]))


class Relevance:
    """A revisited Oxford/Paris query's label row: one code per database image."""

    NEGATIVE, EASY, HARD, JUNK = 0, 1, 2, 3


# protocol -> (codes that count as positives, codes ignored as junk), as revisitop's test script sets them
REVISITED_PROTOCOLS = {"easy": ((Relevance.EASY,), (Relevance.JUNK, Relevance.HARD)),
                       "medium": ((Relevance.EASY, Relevance.HARD), (Relevance.JUNK,)),
                       "hard": ((Relevance.HARD,), (Relevance.JUNK, Relevance.EASY))}


def revisited_ap(positions: np.ndarray, positives: int) -> float:
    """revisitop's compute_ap: trapezoidal area under precision-recall, from the 0-based ranks of the
    positives (junk already removed from the ranking)."""
    ap = 0.0
    for j, rank in enumerate(np.sort(positions)):
        precision_before = 1.0 if rank == 0 else j / rank
        precision_after = (j + 1) / (rank + 1)
        ap += (precision_before + precision_after) / (2.0 * positives)
    return ap


def revisited_map(relevance: np.ndarray, similarity: np.ndarray, protocol: str = "medium") -> float:
    """mAP (percent) of queries (rows of `relevance` and `similarity`, one column per database image),
    as revisitop's compute_map: database ranked by descending similarity, junk removed from the ranking,
    queries without positives under the protocol left out of the mean."""
    positive_codes, junk_codes = REVISITED_PROTOCOLS[protocol]
    aps = []
    for codes, scores in zip(np.asarray(relevance), np.asarray(similarity)):
        ranked = codes[np.argsort(-scores, kind="stable")]
        kept = ranked[~np.isin(ranked, junk_codes)]
        positions = np.flatnonzero(np.isin(kept, positive_codes))
        if len(positions):
            aps.append(revisited_ap(positions, len(positions)))
    return 100.0 * float(np.mean(aps)) if aps else float("nan")


def as_predictions(outputs: np.ndarray) -> np.ndarray:
    """Class indices from class scores (N x classes), or the outputs themselves when already indices."""
    outputs = np.asarray(outputs)
    return outputs.argmax(1) if outputs.ndim == 2 else outputs


def miou(masks: np.ndarray, predicted: np.ndarray) -> float:
    """mIoU of predicted masks (see `segmentation_scores`), the class count read from the data."""
    valid = masks != VOID
    classes = int(max(masks[valid].max(initial=0), predicted[valid].max(initial=0))) + 1
    return segmentation_scores(predicted, masks, classes)["miou"]


# name -> score(labels, outputs) in percent; a dataset's metric is resolved through this table
RECALL_KS = (1, 5, 10)


def image_text_recalls(caption_rows: np.ndarray, similarity: np.ndarray, ks: tuple[int, ...] = RECALL_KS
                       ) -> dict[str, float]:
    """Cross-modal recall@k as CLIP_benchmark's zero-shot retrieval counts it, from `similarity` (images x
    captions) and each image's row of caption indices (-1 pads rows of fewer captions):
    - image_to_text_recall@k: percent of images with one of their captions among their k most similar;
    - text_to_image_recall@k: percent of captions whose image is among their k most similar.
    A query's rank is the number of candidates scored strictly above its best positive (ties favour it)."""
    rows, scores = np.asarray(caption_rows), np.asarray(similarity, dtype=np.float32)
    positive = np.zeros(scores.shape, dtype=bool)
    images, slots = np.nonzero(rows >= 0)
    positive[images, rows[images, slots]] = True
    recalls = {}
    for direction, s, p in (("image_to_text", scores, positive), ("text_to_image", scores.T, positive.T)):
        best = np.where(p, s, -np.inf).max(1)
        rank = (s > best[:, None]).sum(1)
        recalls |= {f"{direction}_recall@{k}": 100.0 * float(np.mean(rank < k)) for k in ks}
    return recalls


SCORERS = {
    Metric.REVISITED_MAP: lambda labels, outputs: revisited_map(labels, outputs, "medium"),
    Metric.MEAN_RECALL: lambda labels, outputs: float(np.mean(list(image_text_recalls(labels, outputs).values()))),
    Metric.TOP1: lambda labels, outputs: top1(labels, as_predictions(outputs)),
    Metric.MEAN_PER_CLASS: lambda labels, outputs: mean_per_class(labels, as_predictions(outputs)),
    Metric.VOC_MAP: voc_map,
    Metric.MIOU: miou,
}


def score(metric: str, labels: np.ndarray, outputs: np.ndarray) -> float:
    """`outputs` are class scores (N x classes; multi-class metrics take their arg-max), class indices,
    or predicted masks for mIoU."""
    metric = parse(Metric, metric, "metric")
    if metric not in SCORERS:
        raise UserError(f"{metric} is not a per-example metric a dataset can declare; use one of "
                        f"{', '.join(SCORERS)}")
    return SCORERS[metric](np.asarray(labels), np.asarray(outputs))


def binned_ece(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error from each example's top confidence and correctness: the sum over
    equal-width confidence bins of |bin| / n * |accuracy(bin) - mean confidence(bin)| (bins are
    left-open, (lo, hi], with 0 in the first)."""
    confidence, correct = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    gap = np.bincount(which, weights=correct - confidence, minlength=bins)  # sum of (correct - confidence) per bin
    return float(np.abs(gap).sum() / len(confidence)) if len(confidence) else 0.0


def mean_ci95(values: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width 1.96 * std / sqrt(n) (population std, as Ericsson's few-shot tables)."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(1.96 * values.std() / np.sqrt(len(values)))


def segmentation_scores(predictions: np.ndarray, masks: np.ndarray, num_classes: int, void: int = VOID
                        ) -> dict[str, float]:
    """mIoU over the classes present in the ground truth (intersection and union accumulated over the
    whole split, then averaged) and pixel accuracy, both in percent; `void` pixels are ignored."""
    valid = masks != void
    truth, predicted = masks[valid].astype(np.int64), predictions[valid].astype(np.int64)
    confusion = np.bincount(truth * num_classes + predicted, minlength=num_classes ** 2).reshape(num_classes,
                                                                                              num_classes)
    intersection = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    present = confusion.sum(1) > 0
    iou = intersection[present] / union[present]
    return {"miou": 100.0 * float(iou.mean()), "pixel_accuracy": 100.0 * float(intersection.sum() / valid.sum()),
            "classes_present": int(present.sum())}


def correct_per_example(metric: Metric, labels: np.ndarray, outputs: np.ndarray) -> np.ndarray | None:
    """Which test examples were classified correctly (kept with a result so two encoders can be compared
    by a paired bootstrap); None for metrics that are not per-example accuracies (multi-label mAP)."""
    if metric not in (Metric.TOP1, Metric.MEAN_PER_CLASS):
        return None
    return as_predictions(outputs) == np.asarray(labels)
