"""Codebook labels and angle metrics against direct numpy computations."""

from __future__ import annotations

import numpy as np
import pytest

from transfer.protocols.dense.normals import (
    IGNORE_LABEL,
    AngleErrorSummary,
    DenseDataError,
    angle_errors,
    load_codebook,
    normals_to_labels,
    probabilities_to_normals,
)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_codebook_is_40_unit_normals() -> None:
    codebook = load_codebook()
    assert codebook.shape == (40, 3)
    np.testing.assert_allclose(np.linalg.norm(codebook, axis=1), 1.0, atol=1e-6)
    assert len(np.unique(codebook.round(6), axis=0)) == 40


def test_labels_are_nearest_codebook_normal_and_invalid_is_255() -> None:
    rng = np.random.default_rng(0)
    codebook = load_codebook()
    normals = unit(rng.normal(size=(5, 7, 3)))
    valid = rng.random((5, 7)) > 0.3
    labels = normals_to_labels(normals, valid, codebook)
    assert labels.dtype == np.uint8
    for i in range(5):
        for j in range(7):
            if not valid[i, j]:
                assert labels[i, j] == IGNORE_LABEL
            else:
                distances = [np.sum((normals[i, j] - c) ** 2) for c in codebook]
                assert labels[i, j] == int(np.argmin(distances))


def test_one_hot_probabilities_give_the_codebook_normal() -> None:
    codebook = load_codebook()
    probs = np.zeros((40, 2, 3))
    probs[7, 0, :] = 1
    probs[12, 1, :] = 1
    normals = probabilities_to_normals(probs, codebook)
    np.testing.assert_allclose(normals[0, 1], codebook[7], atol=1e-12)
    np.testing.assert_allclose(normals[1, 2], codebook[12], atol=1e-12)


def test_soft_probabilities_give_the_normalised_weighted_sum() -> None:
    rng = np.random.default_rng(1)
    codebook = load_codebook()
    probs = rng.random((40, 3, 4))
    probs /= probs.sum(0, keepdims=True)
    got = probabilities_to_normals(probs, codebook)
    for i in range(3):
        for j in range(4):
            v = sum(probs[k, i, j] * codebook[k] for k in range(40))
            np.testing.assert_allclose(got[i, j], v / np.linalg.norm(v), atol=1e-12)


def test_known_angles_and_thresholds() -> None:
    z = np.array([0.0, 0.0, 1.0])
    # errors of 0, 10, 20, 29.9, 45, 90 and 180 degrees about the x axis, and one invalid pixel
    angles = np.array([0, 10, 20, 29.9, 45, 90, 180, 60])
    radians = np.radians(angles)
    predicted = np.stack([np.zeros(8), np.sin(radians), np.cos(radians)], -1)[None]
    target = np.broadcast_to(z, (1, 8, 3)) * 2.0  # not unit: normalised before the angle
    valid = np.array([[True] * 7 + [False]])
    errors = angle_errors(predicted, target, valid)
    np.testing.assert_allclose(errors, angles[:7], atol=1e-5)  # eps in the norms, as the original
    summary = AngleErrorSummary()
    summary.update(errors[:3])
    summary.update(errors[3:])
    result = summary.result()
    assert result["mean_angle_error"] == pytest.approx(np.mean(angles[:7]))
    assert result["median_angle_error"] == pytest.approx(29.9, abs=1e-4)
    assert result["within_11.25"] == pytest.approx(100 * 2 / 7)
    assert result["within_22.5"] == pytest.approx(100 * 3 / 7)
    assert result["within_30"] == pytest.approx(100 * 4 / 7)  # 90 degrees counts as outside
    assert result["valid_pixels"] == 7


def test_random_angles_equal_numpy() -> None:
    rng = np.random.default_rng(2)
    p, t = unit(rng.normal(size=(3, 4, 5, 3))), unit(rng.normal(size=(3, 4, 5, 3)))
    valid = rng.random((3, 4, 5)) > 0.5
    expected = np.degrees(np.arccos(np.clip(np.einsum("...c,...c", p, t)[valid], -1, 1)))
    np.testing.assert_allclose(angle_errors(p, t, valid), expected, atol=1e-9)


def test_errors_are_clear() -> None:
    with pytest.raises(DenseDataError, match="no valid pixels"):
        AngleErrorSummary().result()
    with pytest.raises(DenseDataError, match="expected normals"):
        normals_to_labels(np.zeros((4, 4)), np.ones((4, 4), bool), load_codebook())
