"""Bootstrap intervals over test images for the paper's three metrics, vectorised.

A test score is one draw from the population of test sets the dataset could have had; the
percentile bootstrap resamples the test images with replacement and reads the spread of the
metric over the resamples. Resampling follows the metric's sampling design:

- ``accuracy`` and ``voc11_map``: images are drawn with replacement from the whole test set.
- ``mean_per_class_accuracy``: images are drawn within each class, so every resample keeps the
  test set's class sizes (the metric weights classes equally; the datasets that use it have fixed
  per-class test counts).

Row ``r`` of :func:`resample_indices` is one resample; position ``i`` of a within-class resample
is always drawn from image ``i``'s class, so two models scored on the same indices are compared
on the same resampled test sets (a paired bootstrap).

Speed: nothing loops over resamples in Python. Accuracy and per-class accuracy score each image
once (correct or not) and aggregate the resampled correctness with ``bincount``; VOC mAP sorts each
class's scores once and turns a resample into per-image draw counts, so its precision/recall
curve is two segment sums over the counts. Work is chunked over resamples to bound memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from transfer.stats.metrics import METRICS, MetricError

# Resamples processed together; bounds the (chunk, n) temporaries to ~10^7 elements.
_CHUNK_ELEMENTS = 10_000_000


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise MetricError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")


def resample_indices(
    targets: np.ndarray, metric: str, n_resamples: int, seed: int = 0
) -> np.ndarray:
    """``(n_resamples, n)`` int64 row indices into the test set, one bootstrap resample a row.

    Within-class for ``mean_per_class_accuracy`` (column ``i`` is drawn from the images of image
    ``i``'s class), over all images otherwise. ``targets`` is (n,) class indices or (n, C) 0/1
    multi-label; only its length (and, within classes, its labels) matter.
    """
    _check_metric(metric)
    targets = np.asarray(targets)
    if targets.ndim not in (1, 2) or len(targets) == 0:
        raise MetricError(f"targets must be (n,) or (n, C) and non-empty, got {targets.shape}")
    if n_resamples < 1:
        raise MetricError(f"n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    n = len(targets)
    if metric != "mean_per_class_accuracy":
        return rng.integers(0, n, size=(n_resamples, n), dtype=np.int64)
    if targets.ndim != 1:
        raise MetricError("mean_per_class_accuracy resamples within classes: targets must be (n,)")
    out = np.empty((n_resamples, n), dtype=np.int64)
    for label in np.unique(targets):
        members = np.flatnonzero(targets == label)
        out[:, members] = members[rng.integers(0, len(members), size=(n_resamples, len(members)))]
    return out


def _chunks(n_resamples: int, n: int):
    step = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, n_resamples, step):
        yield slice(start, min(start + step, n_resamples))


def _per_image_correct(metric: str, targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    if targets.ndim != 1 or scores.ndim != 2 or len(targets) != len(scores):
        raise MetricError(
            f"{metric} needs (n,) targets and (n, C) scores, got {targets.shape} and {scores.shape}"
        )
    return scores.argmax(axis=1) == targets


def _accuracy_over_resamples(correct: np.ndarray, indices: np.ndarray) -> np.ndarray:
    out = np.empty(len(indices))
    for rows in _chunks(len(indices), indices.shape[1]):
        out[rows] = correct[indices[rows]].mean(axis=1)
    return 100.0 * out


def _per_class_over_resamples(
    targets: np.ndarray, correct: np.ndarray, indices: np.ndarray
) -> np.ndarray:
    """Mean over the classes present in each resample of that class's recall (as
    ``metrics.mean_per_class_accuracy``), via one ``bincount`` over (resample, class) keys."""
    if targets.min() < 0:
        raise MetricError(f"class indices must be >= 0, got {targets.min()}")
    num_classes = int(targets.max()) + 1
    out = np.empty(len(indices))
    for rows in _chunks(len(indices), indices.shape[1]):
        block = indices[rows]
        keys = (np.arange(len(block))[:, None] * num_classes + targets[block]).ravel()
        size = len(block) * num_classes
        support = np.bincount(keys, minlength=size).reshape(len(block), num_classes)
        hits = np.bincount(keys, weights=correct[block].ravel(), minlength=size)
        hits = hits.reshape(len(block), num_classes)
        present = support > 0
        recall = np.divide(hits, support, out=np.zeros_like(hits), where=present)
        out[rows] = recall.sum(axis=1) / present.sum(axis=1)
    return 100.0 * out


def _voc11_ap_over_counts(
    binary_targets: np.ndarray, class_scores: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """11-point AP (fraction) of one class for each row of ``counts`` (how often each image was
    drawn); NaN where a resample holds no positive of the class.

    The curve is ``metrics._precision_recall_points``': images by descending score, one point per
    distinct score (ties enter together), plus (recall 0, precision 1), which alone decides the
    t = 0 term. For t > 0 only the points that end a score group holding a positive matter: true
    positives grow only there, and any other point with recall >= t has the recall and at least
    the predictions of the last such point before it, so no higher precision. Keeping just those
    points (a few hundred of VOC's ~5,000 per class) makes the curve two segment sums
    (``np.add.reduceat``) over the draw counts in score order.
    """
    n_resamples, n = counts.shape
    order = np.argsort(-class_scores, kind="mergesort")
    sorted_scores = class_scores[order]
    hits = binary_targets[order].astype(bool)
    if not hits.any():
        return np.full(n_resamples, np.nan)
    group = np.r_[0, np.cumsum(np.diff(sorted_scores) != 0)]  # score group of each position
    group_end = np.r_[np.flatnonzero(np.diff(sorted_scores)), n - 1]
    positive_positions = np.flatnonzero(hits)
    positive_groups = group[positive_positions]
    new_group = np.r_[True, np.diff(positive_groups) != 0]
    ends = group_end[positive_groups[new_group]]  # last position of each group with a positive
    drawn = counts[:, order]
    predicted = np.cumsum(
        np.add.reduceat(drawn[:, : ends[-1] + 1], np.r_[0, ends[:-1] + 1], axis=1), axis=1
    )
    true_pos = np.cumsum(
        np.add.reduceat(drawn[:, positive_positions], np.flatnonzero(new_group), axis=1), axis=1
    )
    positives = true_pos[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, true_pos / np.maximum(predicted, 1), 0.0)
        recall = true_pos / positives
    # Best precision at or after each point; recall only grows along the axis, so the best
    # precision at recall >= t is the envelope at the first point reaching t (0 past the end).
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    envelope = np.concatenate([envelope, np.zeros((n_resamples, 1))], axis=1)
    rows = np.arange(n_resamples)
    total = np.ones(n_resamples)  # t = 0: the extra (recall 0, precision 1) point
    for threshold in np.linspace(0.0, 1.0, 11)[1:]:
        total += envelope[rows, (recall < threshold).sum(axis=1)]
    ap = total / 11.0
    ap[positives[:, 0] == 0] = np.nan
    return ap


def _voc11_map_over_resamples(
    targets: np.ndarray, scores: np.ndarray, indices: np.ndarray
) -> np.ndarray:
    """Mean over classes of the 11-point AP of each resample; a class with no positive in a
    resample (its AP undefined; ``metrics.voc11_map`` refuses it) is left out of that mean."""
    if targets.ndim != 2 or targets.shape != scores.shape:
        raise MetricError(
            "voc11_map needs (n, C) targets and scores of the same shape, got "
            f"{targets.shape} and {scores.shape}"
        )
    if not np.isin(targets, (0, 1)).all():
        raise MetricError("voc11_map needs 0/1 targets")
    targets = targets.astype(np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    n = len(targets)
    out = np.empty(len(indices))
    for rows in _chunks(len(indices), n):
        block = indices[rows]
        keys = (np.arange(len(block))[:, None] * n + block).ravel()
        counts = np.bincount(keys, minlength=len(block) * n).reshape(len(block), n)
        per_class = np.stack(
            [
                _voc11_ap_over_counts(targets[:, c], scores[:, c], counts)
                for c in range(targets.shape[1])
            ],
            axis=1,
        )
        out[rows] = np.nanmean(per_class, axis=1)
    return 100.0 * out


def metric_over_resamples(
    metric: str, targets: np.ndarray, scores: np.ndarray, indices: np.ndarray
) -> np.ndarray:
    """``(n_resamples,)`` value in percent of ``metric`` on each resample (row of ``indices``).

    ``scores`` is (n, C) with column ``j`` for class ``j``; single-label metrics predict the
    argmax column. Each row equals ``metrics.score`` on ``targets[row], scores[row]`` (for
    ``voc11_map``, a class without a positive in the row is left out of the mean).
    """
    _check_metric(metric)
    targets = np.asarray(targets)
    scores = np.asarray(scores)
    indices = np.asarray(indices)
    if indices.ndim != 2 or not np.issubdtype(indices.dtype, np.integer):
        raise MetricError(f"indices must be a 2-d integer array, got {indices.shape}")
    if indices.size and (indices.min() < 0 or indices.max() >= len(targets)):
        raise MetricError(f"indices out of range for a test set of {len(targets)} images")
    if metric == "voc11_map":
        return _voc11_map_over_resamples(targets, scores, indices)
    correct = _per_image_correct(metric, targets, scores)
    if metric == "accuracy":
        return _accuracy_over_resamples(correct, indices)
    return _per_class_over_resamples(targets.astype(np.int64), correct, indices)


def bootstrap_ci(
    metric: str,
    targets: np.ndarray,
    scores: np.ndarray,
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` in percent for ``metric`` on this test set."""
    _check_level(level)
    targets = np.asarray(targets)
    indices = resample_indices(targets, metric, n_resamples, seed)
    return _percentile_interval(metric_over_resamples(metric, targets, scores, indices), level)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise MetricError(f"level must lie in (0, 1), got {level}")


def _percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


# The bootstrap's own seed: fixed, so an interval is a function of the test outputs alone.
BOOTSTRAP_SEED = 0


def interval_fields(
    metric: str,
    targets: np.ndarray,
    scores: np.ndarray | Sequence[np.ndarray],
    n_resamples: int,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
) -> dict:
    """A record's ``ci`` ([low, high], percent) and ``interval`` (how it was made); ``{}`` when
    ``n_resamples`` is 0 (intervals disabled).

    ``scores`` may be a list of (n, C) outputs of repeated runs (finetuning seeds) on the same
    test set: the interval is then that of their mean score, each resample scoring every run on
    the same images.
    """
    if n_resamples < 0:
        raise MetricError(f"bootstrap resamples must be >= 0, got {n_resamples}")
    if n_resamples == 0:
        return {}
    _check_level(level)
    targets = np.asarray(targets)
    runs = [scores] if isinstance(scores, np.ndarray) else list(scores)
    indices = resample_indices(targets, metric, n_resamples, seed)
    values = np.mean([metric_over_resamples(metric, targets, s, indices) for s in runs], axis=0)
    low, high = _percentile_interval(values, level)
    return {
        "ci": [low, high],
        "interval": {
            "method": "bootstrap",
            "level": level,
            "resamples": n_resamples,
            "seed": seed,
            "test_images": len(targets),
        },
    }


def interval_line(record: dict) -> str | None:
    """``95% interval: [93.60, 94.52] (bootstrap, 2000 resamples of 10000 test images)``, or None
    for a record without an interval."""
    if record.get("ci") is None:
        return None
    low, high = record["ci"]
    how = record["interval"]
    return (
        f"{100 * how['level']:g}% interval: [{low:.2f}, {high:.2f}] "
        f"({how['method']}, {how['resamples']} resamples of {how['test_images']} test images)"
    )
