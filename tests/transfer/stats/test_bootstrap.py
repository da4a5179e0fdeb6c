"""transfer.stats.bootstrap against plain numpy loops over resamples, and its statistical
behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from transfer.stats import bootstrap, metrics


def _single_label(rng, n=300, num_classes=6, right=0.6):
    targets = rng.integers(0, num_classes, n)
    scores = rng.normal(size=(n, num_classes))
    hit = rng.random(n) < right
    scores[np.arange(n), targets] += np.where(hit, 3.0, 0.0)
    return targets, scores


def _multi_label(rng, n=120, num_classes=4):
    targets = (rng.random((n, num_classes)) < 0.35).astype(np.int64)
    # noisy scores with ties (rounded), so both tie handling and misorderings are exercised
    scores = np.round(targets * 0.8 + rng.normal(scale=0.6, size=targets.shape), 1)
    return targets, scores


def _slow_loop(metric, targets, scores, indices):
    """One resample at a time: index the rows, score them with ``transfer.metrics``."""
    values = []
    for row in indices:
        if metric == "voc11_map":
            rows_targets, rows_scores = targets[row], scores[row]
            per_class = [
                metrics.voc11_average_precision(rows_targets[:, c], rows_scores[:, c])
                for c in range(targets.shape[1])
                if rows_targets[:, c].any()
            ]
            values.append(np.mean(per_class))
        else:
            values.append(metrics.score(metric, targets[row], scores[row]))
    return np.array(values)


def _plain_resamples(targets, metric, n_resamples, rng):
    """Independent resampling with a Python loop (what resample_indices vectorises)."""
    n = len(targets)
    out = []
    for _ in range(n_resamples):
        if metric == "mean_per_class_accuracy":
            row = np.empty(n, dtype=np.int64)
            for label in np.unique(targets):
                members = np.flatnonzero(targets == label)
                row[members] = rng.choice(members, size=len(members), replace=True)
            out.append(row)
        else:
            out.append(rng.choice(n, size=n, replace=True))
    return np.array(out)


@pytest.mark.parametrize("metric", ["accuracy", "mean_per_class_accuracy"])
def test_single_label_metrics_match_slow_loop(metric):
    rng = np.random.default_rng(1)
    targets, scores = _single_label(rng)
    indices = _plain_resamples(targets, metric, 60, rng)
    fast = bootstrap.metric_over_resamples(metric, targets, scores, indices)
    np.testing.assert_allclose(fast, _slow_loop(metric, targets, scores, indices), atol=1e-9)


def test_mean_per_class_accuracy_on_any_indices_leaves_out_absent_classes():
    """Indices drawn over images (as a caller may pass) can miss a rare class entirely; like
    ``metrics.mean_per_class_accuracy`` the resample's mean is then over the classes it has."""
    rng = np.random.default_rng(9)
    targets, scores = _single_label(rng, n=120)
    targets[:2] = 6  # a rare seventh class, absent from some resamples
    scores = np.concatenate([scores, rng.normal(size=(120, 1))], axis=1)
    indices = _plain_resamples(targets, "accuracy", 80, rng)
    assert any(6 not in targets[row] for row in indices)
    fast = bootstrap.metric_over_resamples("mean_per_class_accuracy", targets, scores, indices)
    slow = _slow_loop("mean_per_class_accuracy", targets, scores, indices)
    np.testing.assert_allclose(fast, slow, atol=1e-9)


def test_voc11_map_matches_slow_loop_with_ties():
    rng = np.random.default_rng(2)
    targets, scores = _multi_label(rng)
    indices = _plain_resamples(targets, "voc11_map", 60, rng)
    fast = bootstrap.metric_over_resamples("voc11_map", targets, scores, indices)
    np.testing.assert_allclose(fast, _slow_loop("voc11_map", targets, scores, indices), atol=1e-9)


def test_voc11_map_leaves_out_a_class_without_positives_in_a_resample():
    targets = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [1, 1]])
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.4], [0.6, 0.7], [0.5, 0.2]])
    indices = np.array([[0, 0, 2, 2, 0], [0, 1, 2, 3, 4]])  # row 0: no positive of class 1
    fast = bootstrap.metric_over_resamples("voc11_map", targets, scores, indices)
    assert fast[0] == pytest.approx(metrics.voc11_average_precision([1, 1, 1, 1, 1], [0.9] * 5))
    assert fast[1] == pytest.approx(metrics.voc11_map(targets, scores))


def test_identity_resample_gives_the_point_metric():
    rng = np.random.default_rng(3)
    targets, scores = _single_label(rng)
    identity = np.arange(len(targets))[None]
    for metric in ("accuracy", "mean_per_class_accuracy"):
        value = bootstrap.metric_over_resamples(metric, targets, scores, identity)[0]
        assert value == pytest.approx(metrics.score(metric, targets, scores))


def test_resample_indices_shape_range_and_within_class_design():
    rng = np.random.default_rng(4)
    targets = rng.integers(0, 5, 200)
    over_images = bootstrap.resample_indices(targets, "accuracy", 50, seed=0)
    assert over_images.shape == (50, 200) and over_images.dtype == np.int64
    assert over_images.min() >= 0 and over_images.max() < 200
    # over images, class sizes vary between resamples; within classes they never do
    sizes = [np.bincount(targets[row], minlength=5) for row in over_images]
    assert len({tuple(s) for s in sizes}) > 1
    within = bootstrap.resample_indices(targets, "mean_per_class_accuracy", 50, seed=0)
    assert (targets[within] == targets[None, :]).all()
    assert len(np.unique(within)) > 150  # actually resampling, not the identity
    multi = bootstrap.resample_indices(np.zeros((30, 4)), "voc11_map", 7, seed=0)
    assert multi.shape == (7, 30)


def test_seeded_reproducibility():
    rng = np.random.default_rng(5)
    targets, scores = _single_label(rng)
    for metric in ("accuracy", "mean_per_class_accuracy"):
        first = bootstrap.resample_indices(targets, metric, 20, seed=7)
        np.testing.assert_array_equal(first, bootstrap.resample_indices(targets, metric, 20, 7))
        assert not np.array_equal(first, bootstrap.resample_indices(targets, metric, 20, 8))
        ci = bootstrap.bootstrap_ci(metric, targets, scores, n_resamples=300, seed=7)
        assert ci == bootstrap.bootstrap_ci(metric, targets, scores, n_resamples=300, seed=7)


@pytest.mark.parametrize("metric", ["accuracy", "mean_per_class_accuracy", "voc11_map"])
def test_interval_contains_point_estimate(metric):
    rng = np.random.default_rng(6)
    targets, scores = _multi_label(rng) if metric == "voc11_map" else _single_label(rng)
    point = metrics.score(metric, targets, scores)
    low, high = bootstrap.bootstrap_ci(metric, targets, scores, n_resamples=500)
    assert low < point < high
    assert high - low < 30  # a real interval, not (0, 100)


def test_coverage_of_a_classifier_of_known_accuracy():
    """About 95% of 95% intervals from simulated test sets cover the true accuracy."""
    rng = np.random.default_rng(8)
    true_accuracy, n, covered = 0.8, 400, 0
    targets = rng.integers(0, 4, n)
    for trial in range(200):
        correct = rng.random(n) < true_accuracy
        predictions = np.where(correct, targets, (targets + 1) % 4)
        scores = np.eye(4)[predictions]
        low, high = bootstrap.bootstrap_ci("accuracy", targets, scores, n_resamples=400, seed=trial)
        covered += low <= 100 * true_accuracy <= high
    # binomial(200, 0.95) lies in [180, 197] with probability > 0.99
    assert 180 <= covered <= 197


def test_errors_are_clear():
    targets = np.array([0, 1, 1])
    scores = np.eye(2)[targets]
    with pytest.raises(metrics.MetricError, match="unknown metric"):
        bootstrap.resample_indices(targets, "top5", 10)
    with pytest.raises(metrics.MetricError, match="within classes"):
        bootstrap.resample_indices(np.zeros((3, 2)), "mean_per_class_accuracy", 10)
    with pytest.raises(metrics.MetricError, match="out of range"):
        bootstrap.metric_over_resamples("accuracy", targets, scores, np.array([[0, 3, 1]]))
    with pytest.raises(metrics.MetricError, match="level"):
        bootstrap.bootstrap_ci("accuracy", targets, scores, level=95)
