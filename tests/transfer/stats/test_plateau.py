"""transfer.plateau: one val image's weight per metric, the plateau of C values, its line."""

from __future__ import annotations

import numpy as np
import pytest

from transfer.stats import metrics
from transfer.stats.plateau import c_plateau, one_val_image, plateau_line


def test_one_val_image_is_the_largest_change_one_prediction_makes():
    rng = np.random.default_rng(0)
    targets = np.repeat([0, 1, 2], [10, 4, 6])
    predictions = np.where(rng.random(20) < 0.6, targets, (targets + 1) % 3)
    assert one_val_image("accuracy", targets) == pytest.approx(100 / 20)
    step = one_val_image("mean_per_class_accuracy", targets)
    assert step == pytest.approx(100 / (3 * 4))  # class 1, the smallest, has 4 images
    # flipping every single prediction changes the score by at most that step (and once exactly)
    base = metrics.mean_per_class_accuracy(targets, predictions)
    changes = []
    for i in range(20):
        flipped = predictions.copy()
        flipped[i] = targets[i] if predictions[i] != targets[i] else (targets[i] + 1) % 3
        changes.append(abs(metrics.mean_per_class_accuracy(targets, flipped) - base))
    assert max(changes) == pytest.approx(step)
    multilabel = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 1, 0]])  # class 2: no positive
    assert one_val_image("voc11_map", multilabel) == pytest.approx(100 / (2 * 3))
    with pytest.raises(ValueError, match="unknown metric"):
        one_val_image("top5", targets)


def test_plateau_lists_every_C_within_the_tolerance_and_spans_its_ends():
    Cs = [1e2, 1e1, 1e0, 1e-1, 1e-2, 1e-3]  # the grid's order: largest C first
    val = [90.0, 95.0, 94.6, 93.0, 94.9, 80.0]
    plateau = c_plateau(Cs, val, tolerance=0.5)
    assert plateau["Cs"] == [1e1, 1e0, 1e-2]  # not contiguous: 1e-1 is out
    assert (plateau["low_C"], plateau["high_C"]) == (1e-2, 1e1)
    assert plateau["grid_steps"] == 4  # grid values 1e1 .. 1e-2, inclusive
    assert c_plateau(Cs, val, tolerance=0.01)["grid_steps"] == 1
    # equal scores computed in float64 by different sums are inside
    assert c_plateau([1.0, 2.0], [0.1 + 0.2, 0.3], tolerance=0.0)["Cs"] == [1.0, 2.0]


def test_plateau_line():
    plateau = {"low_C": 10.0, "high_C": 1000.0, "grid_steps": 9,
               "test_scores": {"low": 93.84, "high": 94.26}}  # fmt: skip
    assert plateau_line(plateau) == "C plateau: 1e+01..1e+03 (9 grid steps), test 93.8..94.3%"
    assert plateau_line({**plateau, "grid_steps": 1}) is None
    assert plateau_line(None) is None
