from __future__ import annotations

import numpy as np
import pytest
import torch

from transfer.classifiers.protonet import EpisodeError, episode_accuracies, sample_episodes
from transfer.stats.metrics import mean_and_ci95


@pytest.fixture(scope="module")
def labels():
    rng = np.random.default_rng(3)
    return np.concatenate([np.full(n, c) for c, n in enumerate(rng.integers(25, 60, size=12))])


def test_episodes_have_distinct_classes_and_images_of_the_right_class(labels):
    episodes = sample_episodes(labels, n_way=5, n_support=5, n_query=15, n_episodes=200, seed=0)
    assert episodes.support.shape == (200, 5, 5) and episodes.query.shape == (200, 5, 15)
    for e in range(200):
        assert len(set(episodes.classes[e])) == 5
        for way, cls in enumerate(episodes.classes[e]):
            images = np.concatenate([episodes.support[e, way], episodes.query[e, way]])
            assert len(set(images)) == 20
            assert (labels[images] == cls).all()


def test_same_seed_same_episodes_other_seed_other_episodes(labels):
    a = sample_episodes(labels, 5, 5, 15, 50, seed=0)
    b = sample_episodes(labels, 5, 5, 15, 50, seed=0)
    c = sample_episodes(labels, 5, 5, 15, 50, seed=1)
    assert np.array_equal(a.support, b.support) and np.array_equal(a.query, b.query)
    assert not np.array_equal(a.support, c.support)


def test_small_classes_are_left_out_and_impossible_requests_fail():
    labels = np.array([0] * 30 + [1] * 30 + [2] * 4)
    episodes = sample_episodes(labels, 2, 5, 15, 20, seed=0)
    assert episodes.skipped_classes == (2,) and 2 not in episodes.classes
    with pytest.raises(EpisodeError, match="need 3 classes with >= 20 images; only 2 of 3"):
        sample_episodes(labels, 3, 5, 15, 20, seed=0)


def test_vectorised_accuracy_equals_a_plain_episode_loop(labels):
    features = (
        torch.randn(len(labels), 64)
        + torch.nn.functional.one_hot(torch.as_tensor(labels), 64).float() * 1.5
    )
    episodes = sample_episodes(labels, 5, 5, 15, 120, seed=0)
    ours = episode_accuracies(features, episodes, chunk=32)
    x = features.double().numpy()
    for e in range(len(episodes)):
        prototypes = np.stack([x[s].mean(axis=0) for s in episodes.support[e]])
        correct = 0
        for way, queries in enumerate(episodes.query[e]):
            for q in queries:
                distances = ((x[q] - prototypes) ** 2).sum(axis=1)
                correct += int(np.argmin(distances) == way)
        assert ours[e] == pytest.approx(100.0 * correct / 75, abs=1e-6)
    assert 30 < ours.mean() < 100


def test_interval_is_the_papers():
    accuracies = np.array([60.0, 70.0, 80.0, 90.0])
    mean, ci = mean_and_ci95(accuracies)
    assert mean == 75.0
    assert ci == pytest.approx(1.96 * np.sqrt(np.mean((accuracies - 75.0) ** 2)) / 2)
