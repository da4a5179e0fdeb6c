"""mIoU and pixel accuracy against scikit-learn's confusion matrix and a direct loop."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from transfer.protocols.dense.segmentation_metrics import confusion_matrix, segmentation_scores


def test_confusion_matrix_equals_sklearn_and_ignores_minus_one() -> None:
    rng = np.random.default_rng(0)
    label = rng.integers(-1, 6, size=(20, 30))
    pred = rng.integers(0, 6, size=(20, 30))
    got = confusion_matrix(pred, label, 6)
    keep = label >= 0
    expected = sk_confusion_matrix(label[keep], pred[keep], labels=range(6))
    np.testing.assert_array_equal(got, expected)


def test_scores_equal_a_direct_computation() -> None:
    rng = np.random.default_rng(1)
    num_class = 5
    matrix = np.zeros((num_class, num_class), dtype=np.int64)
    images = []
    for _ in range(3):
        label = rng.integers(-1, num_class - 1, size=(8, 9))  # class 4 never labelled
        pred = rng.integers(0, num_class, size=(8, 9))
        images.append((pred, label))
        matrix += confusion_matrix(pred, label, num_class)
    scores = segmentation_scores(matrix)
    ious, correct, labelled = [], 0, 0
    for c in range(num_class):
        inter = sum(((p == c) & (t == c)).sum() for p, t in images)
        union = sum((((p == c) & (t >= 0)) | (t == c)).sum() for p, t in images)
        ious.append(inter / (union + 1e-10))
    for p, t in images:
        correct += ((p == t) & (t >= 0)).sum()
        labelled += (t >= 0).sum()
    assert scores["per_class_iou"] == pytest.approx(ious)
    assert scores["miou"] == pytest.approx(np.mean(ious))
    assert scores["pixel_accuracy"] == pytest.approx(100 * correct / labelled)


def test_perfect_prediction() -> None:
    label = np.array([[0, 1], [2, -1]])
    scores = segmentation_scores(confusion_matrix(np.array([[0, 1], [2, 0]]), label, 3))
    assert scores["miou"] == pytest.approx(1.0)
    assert scores["pixel_accuracy"] == pytest.approx(100.0)
