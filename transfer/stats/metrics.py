"""The paper's three test metrics, in percent (0-100) like its tables.

- ``accuracy``: fraction of correct argmax predictions.
- ``mean_per_class_accuracy``: mean over classes of the confusion matrix's per-class recall
  (Aircraft, Caltech101, Flowers, Pets).
- ``voc11_map``: PASCAL VOC 2007 11-point average precision, averaged over classes (VOC2007).

Written in numpy rather than through ``sklearn.metrics`` so that the exact rules of the original
code (its tie handling and its extra precision-1 point at recall 0, both inherited from
``sklearn.metrics.precision_recall_curve``) are stated here in a few lines; the tests check them
against scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from transfer.errors import TransferError

METRICS = ("accuracy", "mean_per_class_accuracy", "voc11_map")


class MetricError(TransferError, ValueError):
    """A metric got inputs it cannot score (shapes, label ranges, unknown metric name)."""


def _labels(values: np.ndarray | list, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise MetricError(f"{name} must be a 1-d array of class indices, got shape {array.shape}")
    if array.size == 0:
        raise MetricError(f"{name} is empty: nothing to score")
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.mod(array, 1) == 0):
            raise MetricError(f"{name} must hold integer class indices, got dtype {array.dtype}")
        array = array.astype(np.int64)
    return array


def _same_length(targets: np.ndarray, predictions: np.ndarray) -> None:
    if len(targets) != len(predictions):
        raise MetricError(
            f"targets and predictions differ in length: {len(targets)} vs {len(predictions)}"
        )


def accuracy(targets: np.ndarray | list, predictions: np.ndarray | list) -> float:
    """Percent of samples whose prediction equals the target."""
    targets = _labels(targets, "targets")
    predictions = _labels(predictions, "predictions")
    _same_length(targets, predictions)
    return 100.0 * float(np.mean(targets == predictions))


def mean_per_class_accuracy(
    targets: np.ndarray | list, predictions: np.ndarray | list, num_classes: int | None = None
) -> float:
    """Mean over the classes present in ``targets`` of that class's recall, in percent.

    The original divides the confusion matrix's diagonal by its row sums. Classes that occur in
    neither targets nor predictions have no row and drop out; a class that is predicted but absent
    from the targets has a zero row, which made the original return NaN. We drop it too (as
    ``sklearn.metrics.balanced_accuracy_score`` does), so the score is always a number; on the
    paper's test sets every class is present and the two agree.
    ``num_classes``, when given, checks that every label lies in ``[0, num_classes)``.
    """
    targets = _labels(targets, "targets")
    predictions = _labels(predictions, "predictions")
    _same_length(targets, predictions)
    low = min(targets.min(), predictions.min())
    high = max(targets.max(), predictions.max())
    if low < 0:
        raise MetricError(f"class indices must be >= 0, got {low}")
    if num_classes is not None and high >= num_classes:
        raise MetricError(f"class index {high} out of range for num_classes={num_classes}")
    size = int(high) + 1
    support = np.bincount(targets, minlength=size)
    correct = np.bincount(targets[targets == predictions], minlength=size)
    present = support > 0
    return 100.0 * float(np.mean(correct[present] / support[present]))


def _precision_recall_points(binary_targets: np.ndarray, scores: np.ndarray):
    """Precision and recall at every distinct score threshold, plus (recall 0, precision 1).

    Samples with equal scores enter together (one point per distinct score), and the extra point
    at recall 0 with precision 1 is the one ``sklearn.metrics.precision_recall_curve`` appends,
    which the original's 11-point AP therefore always counted at the threshold t = 0.
    """
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores = scores[order]
    hits = binary_targets[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    true_positives = np.cumsum(hits)[last_of_group]
    predicted_positives = last_of_group + 1
    precision = np.r_[true_positives / predicted_positives, 1.0]
    recall = np.r_[true_positives / true_positives[-1], 0.0]
    return precision, recall


def voc11_average_precision(binary_targets: np.ndarray | list, scores: np.ndarray | list) -> float:
    """VOC 2007 11-point AP in percent: mean over t in {0, 0.1, ..., 1} of the best precision at
    recall >= t (0 for a t no threshold reaches)."""
    binary_targets = np.asarray(binary_targets)
    scores = np.asarray(scores, dtype=np.float64)
    if binary_targets.ndim != 1 or scores.ndim != 1:
        raise MetricError(
            "voc11_average_precision needs 1-d targets and scores, got shapes "
            f"{binary_targets.shape} and {scores.shape}"
        )
    _same_length(binary_targets, scores)
    if binary_targets.size == 0:
        raise MetricError("voc11_average_precision got no samples")
    if not np.isin(binary_targets, (0, 1)).all():
        raise MetricError("voc11_average_precision needs 0/1 targets")
    if not np.isfinite(scores).all():
        raise MetricError("voc11_average_precision got non-finite scores")
    binary_targets = binary_targets.astype(np.int64)
    if binary_targets.sum() == 0:
        raise MetricError("voc11_average_precision: no positive sample, so recall is undefined")
    precision, recall = _precision_recall_points(binary_targets, scores)
    total = 0.0
    for threshold in np.linspace(0.0, 1.0, 11):
        reached = recall >= threshold
        total += precision[reached].max() if reached.any() else 0.0
    return 100.0 * total / 11.0


def voc11_map(targets: np.ndarray, scores: np.ndarray) -> float:
    """Mean over classes (columns) of the 11-point AP, in percent; ``targets`` is (n, C) 0/1."""
    targets = np.asarray(targets)
    scores = np.asarray(scores)
    if targets.ndim != 2 or targets.shape != scores.shape:
        raise MetricError(
            "voc11_map needs (n, C) targets and scores of the same shape, got "
            f"{targets.shape} and {scores.shape}"
        )
    per_class = [voc11_average_precision(targets[:, c], scores[:, c]) for c in range(len(scores.T))]
    return float(np.mean(per_class))


def score(
    metric: str,
    targets: np.ndarray,
    decision_scores: np.ndarray,
    classes: np.ndarray | None = None,
) -> float:
    """Score ``decision_scores`` (n, C) against ``targets`` with the named metric, in percent.

    Single-label metrics predict the argmax column; ``classes`` maps columns to labels when they
    are not simply 0..C-1 (a classifier trained without some class, as scikit-learn's
    ``classes_``).
    """
    decision_scores = np.asarray(decision_scores)
    if metric == "voc11_map":
        return voc11_map(targets, decision_scores)
    if metric not in METRICS:
        raise MetricError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    if decision_scores.ndim != 2:
        raise MetricError(
            f"decision_scores must be (n, num_classes) for {metric}, got {decision_scores.shape}"
        )
    predictions = decision_scores.argmax(axis=1)
    if classes is not None:
        predictions = np.asarray(classes)[predictions]
    if metric == "accuracy":
        return accuracy(targets, predictions)
    return mean_per_class_accuracy(targets, predictions)


def first_best(scores: Sequence[float]) -> int:
    """Index of the first strictly best score in order (NaN never wins): the original's model
    selection (``if score > best``), for the linear probe's C and finetuning's (lr, wd)."""
    best_index, best = 0, -math.inf
    for index, value in enumerate(scores):
        if value > best:
            best_index, best = index, value
    return best_index


def mean_and_ci95(accuracies: np.ndarray) -> tuple[float, float]:
    """Mean and the paper's few-shot interval 1.96 * std / sqrt(n) (numpy's std, ddof 0): over
    episodes, or over the tries of low-shot kNN."""
    accuracies = np.asarray(accuracies, dtype=np.float64)
    return float(accuracies.mean()), float(1.96 * accuracies.std() / math.sqrt(len(accuracies)))
