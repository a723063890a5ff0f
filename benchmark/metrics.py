"""Dataset metrics, in percent, as the reference computes them."""

from __future__ import annotations

import base64

import numpy as np

from benchmark.errors import UserError


def top1(labels: np.ndarray, predictions: np.ndarray) -> float:
    return 100.0 * float(np.mean(labels == predictions))


def mean_per_class(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Mean over the classes present in `labels` of per-class recall (the confusion-matrix diagonal
    over its row sums)."""
    recalls = [np.mean(predictions[labels == cls] == cls) for cls in np.unique(labels)]
    return 100.0 * float(np.mean(recalls))


def voc11_average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """PASCAL VOC 2007 11-point interpolated AP of one class: mean over recall thresholds t in
    {0, 0.1, ..., 1} of the best precision at recall >= t (0 when no point reaches t)."""
    order = np.argsort(-scores, kind="stable")
    hits = labels[order].astype(bool)
    positives = hits.sum()
    if positives == 0:
        return 0.0
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


def score(metric: str, labels: np.ndarray, outputs: np.ndarray) -> float:
    """`outputs` are class scores (N x classes); multi-class metrics take their arg-max."""
    if metric == "voc_map":
        return voc_map(labels, outputs)
    predictions = outputs.argmax(1) if outputs.ndim == 2 else outputs
    if metric == "top1":
        return top1(labels, predictions)
    if metric == "mean_per_class":
        return mean_per_class(labels, predictions)
    raise UserError(f"unknown metric {metric!r}; use top1, mean_per_class or voc_map")


def segmentation_scores(predictions: np.ndarray, masks: np.ndarray, num_classes: int, void: int = 255
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


def packed_correct(metric: str, labels: np.ndarray, outputs: np.ndarray) -> str | None:
    """Which test examples were classified correctly, as base64 of packed bits (kept with a result so
    two encoders can be compared by a paired bootstrap); None for multi-label metrics."""
    if metric not in ("top1", "mean_per_class"):
        return None
    outputs = np.asarray(outputs)
    predictions = outputs if outputs.ndim == 1 else outputs.argmax(1)
    correct = np.asarray(predictions) == np.asarray(labels)
    return base64.b64encode(np.packbits(correct)).decode()


def unpack_correct(packed: str, count: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(base64.b64decode(packed), dtype=np.uint8))[:count].astype(bool)
