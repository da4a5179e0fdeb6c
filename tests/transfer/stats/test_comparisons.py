"""Paired bootstrap tests, Holm's correction, rank intervals and correlation intervals, against
hand computations, scipy loops, and real resamples of simulated classifiers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from transfer.stats import bootstrap, comparisons
from transfer.stats.comparisons import Pair


def test_paired_p_value_by_hand():
    # differences 1, 0, 2, -1, 1: two of five at or below 0, four at or above -> 2 * 2/5
    assert comparisons.paired_p_value([5, 4, 6, 3, 5], [4, 4, 4, 4, 4]) == pytest.approx(0.8)
    # differences 2, 0, -1, 2: half at or below 0 -> 1 (capped)
    assert comparisons.paired_p_value([3, 1, 2, 2], [1, 1, 3, 0]) == 1.0
    # every resample favours a: no resample crosses 0
    assert comparisons.paired_p_value([3, 4, 5], [1, 2, 3]) == 0.0
    # symmetric in a and b
    assert comparisons.paired_p_value([4, 4, 4, 4, 4], [5, 4, 6, 3, 5]) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="same length"):
        comparisons.paired_p_value([1, 2], [1, 2, 3])


def test_holm_by_hand():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> 0.06
    adjusted = comparisons.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert comparisons.holm([0.5, 0.6]).tolist() == [1.0, 1.0]  # 0.5 x 2, capped
    assert comparisons.holm([0.02]).tolist() == [0.02]  # one test: unchanged
    assert comparisons.holm([]).size == 0


def _classifier(rng, targets, num_classes, right):
    """Scores whose argmax is the target on a ``right`` share of the images."""
    scores = rng.normal(size=(len(targets), num_classes))
    hit = rng.random(len(targets)) < right
    wrong = (targets + 1 + rng.integers(0, num_classes - 1, len(targets))) % num_classes
    scores[np.arange(len(targets)), np.where(hit, targets, wrong)] += 10.0
    return scores


@pytest.mark.parametrize("metric", ["accuracy", "mean_per_class_accuracy"])
def test_identical_predictions_never_differ_and_a_clearly_better_model_does(metric):
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 5, 400)
    scores = {"good": _classifier(rng, targets, 5, 0.9), "weak": _classifier(rng, targets, 5, 0.6)}
    scores["copy"] = scores["weak"].copy()
    indices = bootstrap.resample_indices(targets, metric, 1000, seed=1)
    resampled = {name: bootstrap.metric_over_resamples(metric, targets, s, indices)
                 for name, s in scores.items()}
    point = {name: float(np.mean(r)) for name, r in resampled.items()}
    pairs = {(p.a, p.b): p for p in comparisons.pairwise_comparisons(resampled, point)}
    assert list(pairs) == [("good", "weak"), ("good", "copy"), ("weak", "copy")]
    assert pairs["weak", "copy"].p == 1.0 and not pairs["weak", "copy"].significant()
    assert pairs["good", "weak"].p == 0.0 and pairs["good", "weak"].significant()
    assert pairs["good", "weak"].difference == pytest.approx(point["good"] - point["weak"])
    assert comparisons.tied_with_best(point, list(pairs.values())) == {"good"}


def test_a_small_difference_is_not_significant():
    """Two models that disagree on 4 of 300 images (one right where the other is wrong, both
    ways): not significantly different, so both are tied with the best."""
    rng = np.random.default_rng(2)
    targets = rng.integers(0, 4, 300)
    a = _classifier(rng, targets, 4, 0.7)
    b = a.copy()
    right = np.flatnonzero(a.argmax(1) == targets)[:3]
    wrong = np.flatnonzero(a.argmax(1) != targets)[:1]
    for i in right:  # b gets these wrong
        b[i] = np.roll(a[i], 1)
    for i in wrong:  # and this one right
        b[i, targets[i]] = b[i].max() + 1
    indices = bootstrap.resample_indices(targets, "accuracy", 2000, seed=0)
    resampled = {n: bootstrap.metric_over_resamples("accuracy", targets, s, indices)
                 for n, s in (("a", a), ("b", b))}
    point = {"a": 100 * np.mean(a.argmax(1) == targets), "b": 100 * np.mean(b.argmax(1) == targets)}
    assert point["a"] - point["b"] == pytest.approx(100 * 2 / 300)
    (pair,) = comparisons.pairwise_comparisons(resampled, point)
    assert 0.05 < pair.p <= 1.0
    assert comparisons.tied_with_best(point, [pair]) == {"a", "b"}


def test_tied_with_best_uses_the_holm_corrected_p():
    point = {"a": 80.0, "b": 79.0, "c": 70.0, "d": 60.0}
    pairs = [Pair("a", "b", 1.0, 0.01, 0.2), Pair("a", "c", 10.0, 0.001, 0.004),
             Pair("b", "c", 9.0, 0.001, 0.004), Pair("c", "d", 10.0, 0.0, 0.0)]
    # b's raw p is below 0.05, its corrected one is not; d was never compared with a
    assert comparisons.tied_with_best(point, pairs) == {"a", "b"}


def test_ranks_and_rank_intervals_by_hand():
    assert comparisons.ranks([5.0, 5.0, 3.0]).tolist() == [1.0, 1.0, 3.0]
    resampled = np.array([[3, 2, 3, 1],   # ranks per resample: 1, 2, 1, 3
                          [2, 3, 1, 2],   # 2, 1, 3, 2
                          [1, 1, 2, 3]])  # 3, 3, 2, 1
    rank, low, high = comparisons.rank_intervals(np.array([3.0, 2.0, 1.0]), resampled, level=0.5)
    assert rank.tolist() == [1.0, 2.0, 3.0]
    # quartiles of the observed ranks: sorted (1, 1, 2, 3), (1, 2, 2, 3), (1, 2, 3, 3)
    assert low.tolist() == [1.0, 1.0, 1.0] and high.tolist() == [2.0, 2.0, 3.0]
    rank, low, high = comparisons.rank_intervals(np.array([3.0, 2.0, 1.0]), resampled)
    assert low.tolist() == [1.0, 1.0, 1.0] and high.tolist() == [3.0, 3.0, 3.0]


def test_correlation_intervals_match_a_scipy_loop():
    rng = np.random.default_rng(5)
    x = rng.normal(size=9)
    y = x + rng.normal(scale=0.7, size=9)
    y[3] = y[4]  # a tie for Spearman's average ranks
    indices = comparisons.model_resamples(9, 400, seed=3)
    result = comparisons.correlation_intervals(x, y, indices)
    pearson, spearman = [], []
    for row in indices:
        if np.ptp(x[row]) == 0 or np.ptp(y[row]) == 0:
            continue
        pearson.append(stats.pearsonr(x[row], y[row]).statistic)
        spearman.append(stats.spearmanr(x[row], y[row]).statistic)
    assert result.valid == len(pearson) and result.resamples == 400
    assert result.pearson == pytest.approx(tuple(np.percentile(pearson, [2.5, 97.5])))
    assert result.spearman == pytest.approx(tuple(np.percentile(spearman, [2.5, 97.5])))
    full = stats.pearsonr(x, y).statistic
    assert result.pearson[0] <= full <= result.pearson[1]


def test_correlation_intervals_of_a_constant_side_are_empty():
    result = comparisons.correlation_intervals([1.0, 2.0, 3.0], [5.0, 5.0, 5.0],
                                               comparisons.model_resamples(3, 50))
    assert result.valid == 0 and all(math.isnan(v) for v in (*result.pearson, *result.spearman))
