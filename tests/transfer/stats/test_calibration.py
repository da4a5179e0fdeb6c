"""transfer.calibration against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transfer.stats import calibration


def _softmax(logits):
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _ece_loop(logits, labels, n_bins=15):
    """Per-bin loop: bin b holds confidences in [b/n, (b+1)/n), the last bin also holds 1."""
    probs = _softmax(logits)
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    total = 0.0
    for b in range(n_bins):
        low, high = b / n_bins, (b + 1) / n_bins
        members = (confidence >= low) & ((confidence < high) | (b == n_bins - 1))
        if members.any():
            gap = abs(correct[members].mean() - confidence[members].mean())
            total += gap * members.sum() / len(labels)
    return 100 * total


def _calibrated_sample(rng, n, k, scale=2.0):
    logits = scale * rng.normal(size=(n, k))
    cumulative = _softmax(logits).cumsum(1)
    labels = (rng.random((n, 1)) > cumulative).sum(1)
    return logits, np.minimum(labels, k - 1)


def test_ece_matches_bin_loop():
    rng = np.random.default_rng(1)
    logits = 3 * rng.normal(size=(2000, 6))
    labels = rng.integers(0, 6, 2000)
    assert calibration.expected_calibration_error(logits, labels) == pytest.approx(
        _ece_loop(logits, labels), abs=1e-9
    )
    assert calibration.expected_calibration_error(logits, labels, n_bins=7) == pytest.approx(
        _ece_loop(logits, labels, 7), abs=1e-9
    )


def test_ece_hand_worked():
    # two samples, confidences 0.9 (right) and 0.6 (wrong): bins apart -> (0.1 + 0.6) / 2
    logits = np.log(np.array([[0.9, 0.1], [0.4, 0.6]]))
    assert calibration.expected_calibration_error(logits, np.array([0, 0])) == pytest.approx(35.0)


def test_ece_near_zero_when_calibrated_and_large_when_overconfident():
    rng = np.random.default_rng(2)
    logits, labels = _calibrated_sample(rng, 100_000, 10)
    assert calibration.expected_calibration_error(logits, labels) < 0.6
    assert calibration.expected_calibration_error(4 * logits, labels) > 10


@pytest.mark.parametrize("factor", [3.0, 1 / 3])
def test_fit_temperature_recovers_the_scaling(factor):
    rng = np.random.default_rng(3)
    logits, labels = _calibrated_sample(rng, 50_000, 10)
    assert calibration.fit_temperature(factor * logits, labels) == pytest.approx(factor, rel=0.03)


def test_fit_temperature_is_the_nll_minimum():
    rng = np.random.default_rng(4)
    logits, labels = 5 * rng.normal(size=(500, 4)), rng.integers(0, 4, 500)
    logits[np.arange(500), labels] += 4.0

    def nll(temperatures):  # brute force over a grid of temperatures, with torch
        z = torch.tensor(logits)[None] / torch.tensor(temperatures)[:, None, None]
        picked = torch.log_softmax(z, dim=2)[:, torch.arange(500), torch.tensor(labels)]
        return -picked.mean(1).numpy()

    coarse = np.exp(np.linspace(np.log(0.05), np.log(50), 1001))
    best = coarse[np.argmin(nll(coarse))]
    fine = np.linspace(best / 1.01, best * 1.01, 2001)
    best = fine[np.argmin(nll(fine))]
    assert calibration.fit_temperature(logits, labels) == pytest.approx(best, rel=1e-4)


def test_temperature_scaled_ece_matches_the_original_fold_loop():
    rng = np.random.default_rng(5)
    n = 1003  # 200 per fold, the last 3 shuffled indices unused
    logits, labels = 3 * rng.normal(size=(n, 5)), rng.integers(0, 5, n)
    logits[np.arange(n), labels] += 2.0
    saved = np.random.get_state()

    # the original: legacy global seed, shuffle a list, torch split, keep the first k chunks
    np.random.seed(0)
    indices = list(range(n))
    np.random.shuffle(indices)
    chunks = torch.tensor(indices).split(int(n / 5))[:5]
    eces = []
    for i in range(5):
        rest = torch.cat([c for j, c in enumerate(chunks) if j != i]).numpy()
        fit = chunks[i].numpy()
        t = calibration.fit_temperature(logits[fit], labels[fit])
        eces.append(_ece_loop(logits[rest] / t, labels[rest]))
    np.random.set_state(saved)  # leave the global stream as found

    result = calibration.temperature_scaled_ece(logits, labels)
    assert result == pytest.approx(np.mean(eces), abs=1e-9)

    unused = np.random.RandomState(0).permutation(n)[1000:]
    changed = logits.copy()
    changed[unused] = -changed[unused]
    assert calibration.temperature_scaled_ece(changed, labels) == pytest.approx(result)


def test_temperature_scaled_ece_leaves_global_rng_alone():
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    rng = np.random.default_rng(6)
    calibration.temperature_scaled_ece(rng.normal(size=(50, 3)), rng.integers(0, 3, 50))
    assert np.random.random() == expected


def test_errors_are_clear():
    with pytest.raises(calibration.MetricError, match="too few for 5 folds"):
        calibration.temperature_scaled_ece(np.zeros((4, 3)), np.zeros(4, dtype=int))
    with pytest.raises(calibration.MetricError, match=r"labels must lie in \[0, 3\)"):
        calibration.expected_calibration_error(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(calibration.MetricError, match="logits must be"):
        calibration.fit_temperature(np.zeros(5), np.zeros(5, dtype=int))


def test_calibration_record_is_the_one_block_every_protocol_writes():
    rng = np.random.default_rng(8)
    logits, labels = rng.normal(size=(40, 4)) * 3, rng.integers(0, 4, 40)
    record = calibration.calibration_record(logits, labels)
    assert record == {
        "ece": pytest.approx(calibration.expected_calibration_error(logits, labels), abs=0),
        "ece_temperature_scaled": pytest.approx(
            calibration.temperature_scaled_ece(logits, labels, folds=5, seed=0), abs=0),
    }  # fmt: skip
    assert record["ece"] > 0 and record["ece_temperature_scaled"] > 0
    # the one guard: fewer samples than folds, or multi-label targets, give no calibration
    none = {"ece": None, "ece_temperature_scaled": None}
    assert calibration.calibration_record(logits[:4], labels[:4]) == none
    assert calibration.calibration_record(logits[:5], labels[:5])["ece"] is not None
    assert calibration.calibration_record(logits, np.eye(4, dtype=np.uint8)[labels]) == none
