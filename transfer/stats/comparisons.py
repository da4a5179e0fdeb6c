"""Which differences between models are real: paired bootstrap tests, Holm's correction, rank
intervals, and intervals for correlations over models.

Pure functions on arrays. The per-resample scores they take come from ``transfer.stats.bootstrap``:
``metric_over_resamples`` of every model on the same resample indices (the same resampled test
sets), so a difference is measured image for image, not between two independent intervals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
LEVEL = 0.95


def paired_p_value(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "a and b score alike", from their scores on the same
    resamples: twice the smaller share of resamples on either side of a zero difference (the
    smallest level whose percentile interval of the difference touches 0). Ties count on both
    sides, so two identical prediction sets get p = 1; 0 means no resample crossed 0 (p < 1/B)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"expected two (B,) arrays of the same length, got {a.shape}, {b.shape}")
    difference = a - b
    return float(min(1.0, 2.0 * min(np.mean(difference <= 0), np.mean(difference >= 0))))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error over all the given tests): the
    i-th smallest p times (m - i + 1), made non-decreasing, capped at 1. Written out here:
    scipy has only the false-discovery-rate corrections, and statsmodels is not a dependency."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if not m:
        return p
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (m - np.arange(m))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


@dataclass(frozen=True)
class Pair:
    """One paired comparison on one test set: ``difference`` = a - b (points)."""

    a: str
    b: str
    difference: float
    p: float
    p_holm: float

    def significant(self, alpha: float = ALPHA) -> bool:
        return self.p_holm < alpha


def pairwise_comparisons(resampled: Mapping[str, np.ndarray],
                         point: Mapping[str, float]) -> list[Pair]:
    """Every pair of models (in the mapping's order), with its paired bootstrap p-value and the
    p-value Holm-corrected over all the pairs."""
    names = list(resampled)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    p = [paired_p_value(resampled[a], resampled[b]) for a, b in pairs]
    adjusted = holm(p)
    return [Pair(a, b, float(point[a] - point[b]), p_ab, float(q))
            for (a, b), p_ab, q in zip(pairs, p, adjusted, strict=True)]


def tied_with_best(point: Mapping[str, float], pairs: Sequence[Pair],
                   alpha: float = ALPHA) -> set[str]:
    """The best model by point score and every model not significantly different from it (Holm
    over all pairs); models without a comparison against the best are left out."""
    if not point:
        return set()
    best = max(point, key=lambda name: point[name])
    tied = {best}
    for pair in pairs:
        if best in (pair.a, pair.b) and not pair.significant(alpha):
            tied.add(pair.b if pair.a == best else pair.a)
    return tied


def ranks(scores: np.ndarray) -> np.ndarray:
    """Ranks of the rows of ``scores`` ((M,) or (M, B)) within each column, 1 = highest; equal
    scores share the best of their ranks ("1, 1, 3")."""
    scores = np.asarray(scores, dtype=float)
    return stats.rankdata(-scores, method="min", axis=0).astype(float)


def rank_intervals(point: np.ndarray, resampled: np.ndarray,
                   level: float = LEVEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each model's rank on the point scores ((M,)) and the (1 - level) / 2 and (1 + level) / 2
    quantiles of its rank over the resamples ((M, B), models x the same resamples); quantiles
    are ranks that occurred (no interpolation between ranks)."""
    resampled = np.asarray(resampled, dtype=float)
    if resampled.ndim != 2 or resampled.shape[0] != len(point):
        raise ValueError(f"expected ({len(point)}, B) resampled scores, got {resampled.shape}")
    over = ranks(resampled)
    tail = (1.0 - level) / 2.0
    low = np.quantile(over, tail, axis=1, method="inverted_cdf")
    high = np.quantile(over, 1.0 - tail, axis=1, method="inverted_cdf")
    return ranks(np.asarray(point, dtype=float)), low, high


def model_resamples(n_models: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """(B, n_models) indices: models drawn with replacement, one resample a row."""
    return np.random.default_rng(seed).integers(0, n_models, size=(n_resamples, n_models))


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of each row pair; NaN where a side is constant (no correlation defined)."""
    constant = (np.ptp(x, axis=1) == 0) | (np.ptp(y, axis=1) == 0)
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    r[constant] = np.nan
    return np.clip(r, -1.0, 1.0)


@dataclass(frozen=True)
class CorrelationIntervals:
    """Percentile intervals of Pearson's r and Spearman's rho over resampled model sets;
    ``valid`` resamples are those where both sides vary (others have no correlation)."""

    pearson: tuple[float, float]
    spearman: tuple[float, float]
    valid: int
    resamples: int


def correlation_intervals(x: Sequence[float], y: Sequence[float], indices: np.ndarray,
                          level: float = LEVEL) -> CorrelationIntervals:
    """Intervals for the correlation of ``x`` and ``y`` (one value per model), resampling the
    models: row ``r`` of ``indices`` (see ``model_resamples``) is one resampled set of models."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    indices = np.asarray(indices)
    xs, ys = x[indices], y[indices]
    pearson = _rowwise_pearson(xs, ys)
    spearman = _rowwise_pearson(stats.rankdata(xs, axis=1), stats.rankdata(ys, axis=1))
    valid = ~np.isnan(pearson)
    tail = 100.0 * (1.0 - level) / 2.0

    def interval(values: np.ndarray) -> tuple[float, float]:
        values = values[~np.isnan(values)]
        if not len(values):
            return math.nan, math.nan
        low, high = np.percentile(values, [tail, 100.0 - tail])
        return float(low), float(high)

    return CorrelationIntervals(interval(pearson), interval(spearman), int(valid.sum()),
                                len(indices))
