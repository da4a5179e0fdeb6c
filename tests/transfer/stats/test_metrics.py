"""transfer.metrics against scikit-learn and hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_curve,
)

from transfer.stats import metrics


def _sklearn_voc11(binary_targets, scores) -> float:
    """The original's voc_eval_cls: precision_recall_curve, then 11 recall thresholds."""
    precision, recall, _ = precision_recall_curve(binary_targets, scores)
    total = 0.0
    for t in np.linspace(0, 1, 11):
        total += precision[recall >= t].max() if np.sum(recall >= t) else 0.0
    return 100.0 * total / 11.0


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_accuracy_matches_sklearn(rng):
    targets = rng.integers(0, 7, 500)
    predictions = np.where(rng.random(500) < 0.6, targets, rng.integers(0, 7, 500))
    assert metrics.accuracy(targets, predictions) == pytest.approx(
        100 * accuracy_score(targets, predictions)
    )


def test_mean_per_class_accuracy_matches_confusion_matrix_and_balanced_accuracy(rng):
    targets = rng.integers(0, 9, 700)
    predictions = np.where(rng.random(700) < 0.5, targets, rng.integers(0, 9, 700))
    cm = confusion_matrix(targets, predictions)
    expected = 100 * np.mean(cm.diagonal() / cm.sum(axis=1))
    assert metrics.mean_per_class_accuracy(targets, predictions) == pytest.approx(expected)
    assert metrics.mean_per_class_accuracy(targets, predictions) == pytest.approx(
        100 * balanced_accuracy_score(targets, predictions)
    )


def test_mean_per_class_accuracy_hand_worked_and_absent_classes():
    # class 0: 2/3 right, class 1: 1/1, class 3: 0/2; class 2 never occurs; class 4 is only
    # predicted (the original's confusion-matrix row would be 0/0 = NaN): both are left out.
    targets = [0, 0, 0, 1, 3, 3]
    predictions = [0, 0, 1, 1, 4, 0]
    assert metrics.mean_per_class_accuracy(targets, predictions) == pytest.approx(
        100 * (2 / 3 + 1 + 0) / 3
    )
    with pytest.warns(UserWarning):
        reference = balanced_accuracy_score(targets, predictions)
    assert metrics.mean_per_class_accuracy(targets, predictions) == pytest.approx(100 * reference)


def test_mean_per_class_accuracy_checks_num_classes():
    with pytest.raises(metrics.MetricError, match="out of range for num_classes=3"):
        metrics.mean_per_class_accuracy([0, 1, 3], [0, 1, 2], num_classes=3)


def test_voc11_hand_worked_cases():
    # ranks: +(P1,R.5) -(P.5,R.5) +(P2/3,R1) -(P.5,R1): t<=.5 -> 1, t>=.6 -> 2/3
    assert metrics.voc11_average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(
        100 * (6 + 5 * 2 / 3) / 11
    )
    # a negative ranked first: the appended (recall 0, precision 1) point still gives t = 0 a 1
    assert metrics.voc11_average_precision([0, 1], [0.9, 0.1]) == pytest.approx(
        100 * (1 + 10 * 0.5) / 11
    )


def test_voc11_matches_precision_recall_curve_with_ties(rng):
    for _ in range(20):
        n = int(rng.integers(5, 300))
        targets = (rng.random(n) < rng.uniform(0.05, 0.6)).astype(int)
        targets[rng.integers(0, n)] = 1
        scores = np.round(rng.normal(size=n) + targets, 1)  # rounding makes ties
        assert metrics.voc11_average_precision(targets, scores) == pytest.approx(
            _sklearn_voc11(targets, scores)
        )


def test_voc11_map_is_mean_over_columns(rng):
    targets = (rng.random((200, 4)) < 0.3).astype(int)
    scores = rng.normal(size=(200, 4)) + targets
    expected = np.mean([_sklearn_voc11(targets[:, c], scores[:, c]) for c in range(4)])
    assert metrics.voc11_map(targets, scores) == pytest.approx(expected)
    assert metrics.score("voc11_map", targets, scores) == pytest.approx(expected)


def test_voc11_rejects_no_positive():
    with pytest.raises(metrics.MetricError, match="no positive sample"):
        metrics.voc11_average_precision([0, 0, 0], [0.1, 0.2, 0.3])


def test_score_dispatch_uses_argmax_and_class_mapping(rng):
    scores = rng.normal(size=(300, 5))
    targets = rng.integers(0, 5, 300)
    predictions = scores.argmax(1)
    assert metrics.score("accuracy", targets, scores) == pytest.approx(
        100 * accuracy_score(targets, predictions)
    )
    assert metrics.score("mean_per_class_accuracy", targets, scores) == pytest.approx(
        100 * balanced_accuracy_score(targets, predictions)
    )
    classes = np.array([2, 4, 6, 8, 10])
    assert metrics.score("accuracy", classes[targets], scores, classes=classes) == pytest.approx(
        100 * accuracy_score(targets, predictions)
    )


def test_score_errors():
    with pytest.raises(metrics.MetricError, match="unknown metric 'top5'"):
        metrics.score("top5", [0, 1], np.zeros((2, 2)))
    with pytest.raises(metrics.MetricError, match="differ in length"):
        metrics.accuracy([0, 1, 1], [0, 1])
    with pytest.raises(metrics.MetricError, match="same shape"):
        metrics.voc11_map(np.zeros((3, 2)), np.zeros((3, 3)))
