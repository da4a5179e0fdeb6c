"""transfer/classifiers/weighted_knn.py against scikit-learn's KNeighborsClassifier with the same
exp(sim / T) weights, a hand-checkable bank, a direct loop for the multi-label (mAP) path, and the
low-shot sampler's guarantees."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_curve
from sklearn.neighbors import KNeighborsClassifier

from transfer.classifiers.weighted_knn import KnnError, knn_class_scores, sample_per_class
from transfer.stats import metrics
from transfer.stats.metrics import mean_and_ci95


def overlapping_classes(n_train=300, n_test=150, dim=12, classes=4, seed=0):
    """Gaussian classes whose means sit closer than the noise: a kNN gets 40-80 %, not 100 %."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 0.6, (classes, dim))
    y_train = rng.integers(0, classes, n_train)
    y_test = rng.integers(0, classes, n_test)
    x_train = means[y_train] + rng.normal(size=(n_train, dim))
    x_test = means[y_test] + rng.normal(size=(n_test, dim))
    return x_train, y_train, x_test, y_test


def sklearn_reference(x_train, y_train, x_test, k, temperature, metric_space):
    """scikit-learn's brute-force kNN with weights exp(sim / T): cosine distance is 1 - sim, and
    our l2 similarity is minus the Euclidean distance."""
    if metric_space == "cosine":
        metric, weights = "cosine", lambda d: np.exp((1.0 - d) / temperature)
    else:
        metric, weights = "euclidean", lambda d: np.exp(-d / temperature)
    clf = KNeighborsClassifier(n_neighbors=k, algorithm="brute", metric=metric, weights=weights)
    clf.fit(x_train, y_train)
    return clf.predict(x_test), clf.predict_proba(x_test)


@pytest.mark.parametrize(
    "metric_space, temperature", [("cosine", 0.07), ("cosine", 0.5), ("l2", 0.5), ("l2", 2.0)]
)
@pytest.mark.parametrize("query_chunk, train_chunk", [(37, 71), (1000, 1000)])
def test_scores_equal_sklearn_weighted_knn(metric_space, temperature, query_chunk, train_chunk):
    x_train, y_train, x_test, y_test = overlapping_classes()
    ks = (1, 3, 10, 25, 101)  # 300 / 71: four full blocks and one of 16 rows, fewer than k=25
    ours = knn_class_scores(
        x_train, y_train, x_test, ks, temperature=temperature, metric_space=metric_space,
        num_classes=4, query_chunk=query_chunk, train_chunk=train_chunk,
    )  # fmt: skip
    for k in ks:
        predicted, proba = sklearn_reference(x_train, y_train, x_test, k, temperature, metric_space)
        np.testing.assert_array_equal(ours[k].argmax(1), predicted)
        np.testing.assert_allclose(ours[k], proba, rtol=1e-9, atol=1e-12)
        accuracy = metrics.accuracy(y_test, predicted)
        assert 30.0 < accuracy < 95.0  # overlapping classes: a wrong neighbour list shows


def test_float32_features_agree_with_sklearn_on_nearly_every_query():
    x_train, y_train, x_test, _ = overlapping_classes(n_train=500, n_test=300, dim=32, seed=1)
    ours = knn_class_scores(
        x_train.astype(np.float32),
        y_train,
        x_test.astype(np.float32),
        [20],
        num_classes=4,
        train_chunk=128,
    )
    predicted, _ = sklearn_reference(x_train, y_train, x_test, 20, 0.07, "cosine")
    assert np.mean(ours[20].argmax(1) == predicted) >= 0.99


def test_all_k_in_one_pass_equal_separate_calls():
    x_train, y_train, x_test, _ = overlapping_classes(seed=2)
    together = knn_class_scores(x_train, y_train, x_test, [50, 5, 1], train_chunk=64)
    for k in (1, 5, 50):
        alone = knn_class_scores(x_train, y_train, x_test, [k], train_chunk=64)[k]
        np.testing.assert_array_equal(together[k], alone)


def test_hand_checked_bank():
    # Four training points on the unit circle; cosine similarity is the cosine of the angle.
    angles = np.deg2rad([0.0, 30.0, 90.0, 180.0])
    bank = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = np.array([0, 1, 1, 2])
    query = np.array([[np.cos(np.deg2rad(10.0)), np.sin(np.deg2rad(10.0))]])
    scores = knn_class_scores(bank, labels, query, [1, 2, 3], temperature=0.1, num_classes=3)
    # k=1: the point at 0 degrees (10 degrees away) alone
    np.testing.assert_allclose(scores[1], [[1.0, 0.0, 0.0]])
    # k=2: 0 and 30 degrees, weighted exp(cos 10 / T) and exp(cos 20 / T)
    w0, w30, w90 = np.exp(np.cos(np.deg2rad([10.0, 20.0, 80.0])) / 0.1)
    np.testing.assert_allclose(scores[2], [[w0 / (w0 + w30), w30 / (w0 + w30), 0.0]])
    # k=3: the point at 90 degrees (80 away) adds a weight e^(cos 80 / 0.1) ~ e^1.7, tiny next to
    # e^9.8 for the nearest point, so class 0 still wins ...
    np.testing.assert_allclose(scores[3], [[w0, w30 + w90, 0.0]] / (w0 + w30 + w90))
    assert scores[3].argmax() == 0
    # ... while at T = 1 the two class-1 votes (e^0.94 + e^0.17) outweigh e^0.98
    flat = knn_class_scores(bank, labels, query, [3], temperature=1.0, num_classes=3)[3]
    w0, w30, w90 = np.exp(np.cos(np.deg2rad([10.0, 20.0, 80.0])))
    np.testing.assert_allclose(flat, [[w0, w30 + w90, 0.0]] / (w0 + w30 + w90))
    assert flat.argmax() == 1


def test_exact_tie_goes_to_the_lowest_class_index():
    bank = np.array([[1.0, 0.0], [0.0, 1.0]])
    query = np.array([[1.0, 1.0]])  # 45 degrees from both
    for labels in ([1, 0], [0, 1]):
        scores = knn_class_scores(bank, np.array(labels), query, [2], num_classes=2)[2]
        assert scores[0, 0] == scores[0, 1]
        assert metrics.score("accuracy", np.array([0]), scores) == 100.0
        assert metrics.score("accuracy", np.array([1]), scores) == 0.0


def test_large_distances_neither_overflow_nor_underflow():
    x_train, y_train, x_test, _ = overlapping_classes(seed=3)
    # distances ~ 5000: exp(-d / T) is 0 in float64, ours scales by the nearest neighbour first
    scores = knn_class_scores(1000 * x_train, y_train, 1000 * x_test, [10], metric_space="l2")
    assert np.isfinite(scores[10]).all()
    np.testing.assert_allclose(scores[10].sum(1), 1.0)
    nearest = knn_class_scores(x_train, y_train, x_test, [1], metric_space="l2")[1]
    np.testing.assert_array_equal(scores[10].argmax(1), nearest.argmax(1))


def direct_multilabel_scores(x_train, labels, x_test, k, temperature):
    """The weighted average of the k nearest label vectors, one query at a time."""
    unit_train = x_train / np.linalg.norm(x_train, axis=1, keepdims=True)
    out = []
    for query in x_test:
        sims = unit_train @ (query / np.linalg.norm(query))
        nearest = np.argsort(-sims, kind="stable")[:k]
        weights = np.exp(sims[nearest] / temperature)
        out.append((weights[:, None] * labels[nearest]).sum(0) / weights.sum())
    return np.array(out)


def eleven_point_ap(truth, scores):
    precision, recall, _ = precision_recall_curve(truth, scores)
    return np.mean(
        [precision[recall >= t].max() if (recall >= t).any() else 0 for t in np.linspace(0, 1, 11)]
    )


def test_multilabel_scores_and_map_equal_a_direct_loop():
    rng = np.random.default_rng(4)
    x_train, x_test = rng.normal(size=(40, 6)), rng.normal(size=(25, 6))
    labels = (rng.random((40, 5)) < 0.35).astype(np.uint8)
    test_labels = (rng.random((25, 5)) < 0.35).astype(np.uint8)
    test_labels[0] = 1  # every class has a positive test image
    ours = knn_class_scores(x_train, labels, x_test, [3, 7], temperature=0.2, train_chunk=9)
    for k in (3, 7):
        direct = direct_multilabel_scores(x_train, labels, x_test, k, 0.2)
        np.testing.assert_allclose(ours[k], direct, rtol=1e-12)
        expected = 100 * np.mean(
            [eleven_point_ap(test_labels[:, c], direct[:, c]) for c in range(5)]
        )
        score = metrics.score("voc11_map", test_labels, ours[k])
        assert score == pytest.approx(expected, abs=1e-9)
        assert 20.0 < score < 95.0


@pytest.mark.parametrize(
    "call, message",
    [
        (dict(ks=[0]), "k must be a positive integer"),
        (dict(ks=[301]), "k=301 is larger than the training set (300 images)"),
        (dict(temperature=0.0), "temperature must be > 0"),
        (dict(temperature=-1.0), "temperature must be > 0"),
        (dict(temperature=float("nan")), "temperature must be > 0"),
        (dict(metric_space="dot"), "unknown metric space 'dot'"),
        (dict(train_chunk=0), "chunk sizes must be >= 1"),
    ],
)
def test_bad_requests_are_clear_errors(call, message):
    x_train, y_train, x_test, _ = overlapping_classes()
    options = {"ks": [10], **call}
    with pytest.raises(KnnError, match=message.replace("(", r"\(").replace(")", r"\)")):
        knn_class_scores(x_train, y_train, x_test, options.pop("ks"), **options)


def test_low_shot_samples_are_seeded_exact_and_without_repeats():
    labels = np.repeat(np.arange(5), [7, 3, 9, 4, 12])
    draws = sample_per_class(labels, 3, tries=6, seed=11)
    assert draws.shape == (6, 15)
    for row in draws:
        assert len(set(row)) == 15  # no image twice
        np.testing.assert_array_equal(np.bincount(labels[row], minlength=5), [3] * 5)
    assert len({tuple(row) for row in draws}) > 1  # tries differ
    np.testing.assert_array_equal(draws, sample_per_class(labels, 3, tries=6, seed=11))
    assert not np.array_equal(draws, sample_per_class(labels, 3, tries=6, seed=12))
    # all images of the smallest class when n equals its size
    smallest = sample_per_class(labels, 3, tries=2, seed=0)
    np.testing.assert_array_equal(np.sort(smallest[0][labels[smallest[0]] == 1]), [7, 8, 9])


def test_low_shot_rejects_too_many_per_class_and_multilabel():
    labels = np.repeat(np.arange(3), [5, 2, 5])
    with pytest.raises(KnnError, match="--n-per-class 3 is more than class 1 has"):
        sample_per_class(labels, 3, tries=1)
    with pytest.raises(KnnError, match="multi-label"):
        sample_per_class(np.ones((4, 2)), 1, tries=1)


def test_interval_is_196_numpy_std_over_sqrt_tries():
    scores = np.array([50.0, 55.0, 61.0, 58.0, 52.0])
    mean, ci95 = mean_and_ci95(scores)
    assert mean == pytest.approx(55.2)
    # numpy's std (ddof=0), as the few-shot intervals: 1.96 * 3.9699 / sqrt(5)
    assert ci95 == pytest.approx(1.96 * np.sqrt(np.mean((scores - 55.2) ** 2)) / np.sqrt(5))
    assert ci95 != pytest.approx(1.96 * scores.std(ddof=1) / np.sqrt(5))
