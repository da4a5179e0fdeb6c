"""Semantic segmentation scores from a confusion matrix: mIoU and pixel accuracy as the MIT
CSAIL toolkit reports them (label -1 ignored; IoU_c = I_c / (U_c + 1e-10) summed over the whole
validation set, averaged over ALL classes, so a class absent from both prediction and labels
counts 0; pixel accuracy = correct / labelled pixels)."""

from __future__ import annotations

import numpy as np

IOU_EPS = 1e-10


def confusion_matrix(predicted: np.ndarray, label: np.ndarray, num_class: int) -> np.ndarray:
    """(num_class, num_class) int64 counts, rows = label, columns = prediction; pixels whose
    label is outside [0, num_class) are ignored."""
    predicted = np.asarray(predicted).ravel().astype(np.int64)
    label = np.asarray(label).ravel().astype(np.int64)
    if predicted.shape != label.shape:
        raise ValueError(f"prediction has {predicted.size} pixels, label {label.size}")
    keep = (label >= 0) & (label < num_class)
    index = label[keep] * num_class + predicted[keep]
    return np.bincount(index, minlength=num_class * num_class).reshape(num_class, num_class)


def segmentation_scores(matrix: np.ndarray) -> dict[str, float | list[float]]:
    """``miou`` (fraction), ``pixel_accuracy`` (percent) and ``per_class_iou``."""
    matrix = np.asarray(matrix, dtype=np.float64)
    intersection = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - intersection
    iou = intersection / (union + IOU_EPS)
    labelled = matrix.sum()
    return {
        "miou": float(iou.mean()),
        "pixel_accuracy": 100.0 * float(intersection.sum() / labelled) if labelled else 0.0,
        "per_class_iou": [float(v) for v in iou],
    }
