"""How much the linear protocol's choice of C matters: the "plateau" of C values whose validation
score cannot be told from the best one's at the resolution of a single validation image.

A score that one val image more or less could flip says nothing about which C is better, so every
C within that distance of the best is an equally defensible choice; the test scores at the
plateau's two ends show how much the reported number depends on that choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Val scores are sums of fractions computed in float64; equal ones may differ in the last bits.
_SLACK = 1e-9


def one_val_image(metric: str, val_targets: np.ndarray) -> float:
    """The largest change (in percent) one val image's prediction can make to the val score.

    - ``accuracy``: ``100 / n``.
    - ``mean_per_class_accuracy``: one image changes its class's recall by ``1 / n_c`` and the
      mean by ``1 / (K n_c)`` (K classes present); the largest such step is that of the class with
      the fewest val images, ``100 / (K min n_c)``.
    - ``voc11_map``: the same rule over classes with their positives: one positive image moving
      in a class's ranking moves that class's recall points by ``1 / n_pos``, so the step taken is
      ``100 / (C min n_pos)`` over the C classes with a positive. (AP is not a count, so this is
      a scale of one image's effect rather than an exact bound.)
    """
    val_targets = np.asarray(val_targets)
    if metric == "accuracy":
        return 100.0 / len(val_targets)
    if metric == "mean_per_class_accuracy":
        counts = np.bincount(val_targets.astype(np.int64))
    elif metric == "voc11_map":
        counts = val_targets.sum(axis=0).astype(np.int64)
    else:
        raise ValueError(f"unknown metric {metric!r}")
    counts = counts[counts > 0]
    return 100.0 / (len(counts) * counts.min())


def c_plateau(Cs: Sequence[float], val_scores: Sequence[float], tolerance: float) -> dict:
    """Every C (in grid order) whose val score is within ``tolerance`` of the best, its smallest
    and largest C, and ``grid_steps``: how many grid values lie from one end to the other
    (inclusive), so 1 means the best C stands alone."""
    scores = np.asarray(val_scores, dtype=np.float64)
    inside = np.flatnonzero(scores >= scores.max() - tolerance - _SLACK)
    values = [float(Cs[i]) for i in inside]
    low_index = int(inside[np.argmin(values)])
    high_index = int(inside[np.argmax(values)])
    return {
        "Cs": values,
        "low_C": float(Cs[low_index]),
        "high_C": float(Cs[high_index]),
        "grid_steps": abs(high_index - low_index) + 1,
        "tolerance": float(tolerance),
    }


def plateau_line(plateau: dict | None) -> str | None:
    """``C plateau: 1e+01..1e+03 (9 grid steps), test 93.8..94.3%`` (test scores at the small and
    the large end of C, in that order), or None when the plateau is a single grid value (or C was
    given)."""
    if plateau is None or plateau["grid_steps"] <= 1:
        return None
    test = plateau["test_scores"]
    return (
        f"C plateau: {plateau['low_C']:.0e}..{plateau['high_C']:.0e} "
        f"({plateau['grid_steps']} grid steps), test {test['low']:.1f}..{test['high']:.1f}%"
    )
