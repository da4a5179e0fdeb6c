"""Expected calibration error (ECE) and temperature scaling, as the paper's Table 9 measures them.

The original used the ``netcal`` package (``ECE(15)`` and ``TemperatureScaling``); both are a few
lines of numpy/scipy, so we write them here instead of adding that dependency. ECE follows
netcal: confidences (max softmax probability) clipped into (0, 1), 15 equal-width bins whose
intervals are closed on the left, empty bins ignored, and the bins' |accuracy - confidence|
weighted by their share of samples. One deliberate difference: the temperature is fitted on the
logits themselves, whereas netcal took the log of float32 softmax probabilities clipped at float64
eps; that only differs for probabilities below about 1e-16.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from transfer.stats.metrics import MetricError

# Search range for the temperature: wide enough for any logistic-regression head.
_LOG_T_BOUNDS = (float(np.log(1e-4)), float(np.log(1e4)))
# The original's cross-validation of the temperature: 5 folds, numpy seed 0.
CALIBRATION_FOLDS = 5
CALIBRATION_SEED = 0



def _check(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise MetricError(f"logits must be (n, num_classes >= 2), got shape {logits.shape}")
    if labels.shape != (logits.shape[0],):
        raise MetricError(
            f"labels must be ({logits.shape[0]},) to match the logits, got {labels.shape}"
        )
    if logits.shape[0] == 0:
        raise MetricError("no samples to calibrate")
    if not np.isfinite(logits).all():
        raise MetricError("logits contain NaN or infinity")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise MetricError(
            f"labels must lie in [0, {logits.shape[1]}), got range [{labels.min()}, {labels.max()}]"
        )
    return logits, labels.astype(np.int64)


def expected_calibration_error(
    logits: np.ndarray, labels: np.ndarray, n_bins: int = 15
) -> float:
    """ECE in percent: sum over equal-width confidence bins of |accuracy - confidence| times the
    bin's fraction of samples, confidence being the max softmax probability."""
    logits, labels = _check(logits, labels)
    if n_bins < 1:
        raise MetricError(f"n_bins must be >= 1, got {n_bins}")
    log_probs = log_softmax(logits, axis=1)
    predictions = log_probs.argmax(axis=1)
    eps = np.finfo(np.float64).eps
    confidence = np.clip(np.exp(log_probs.max(axis=1)), eps, 1.0 - eps)
    correct = (predictions == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    filled = counts > 0
    accuracy_per_bin = np.bincount(bins, weights=correct, minlength=n_bins)[filled] / counts[filled]
    confidence_per_bin = (
        np.bincount(bins, weights=confidence, minlength=n_bins)[filled] / counts[filled]
    )
    gaps = np.abs(accuracy_per_bin - confidence_per_bin)
    return 100.0 * float(np.sum(gaps * counts[filled]) / len(labels))


def _mean_nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    log_probs = log_softmax(logits / temperature, axis=1)
    return -float(np.mean(log_probs[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising the mean negative log-likelihood of softmax(logits / T).

    The NLL is convex in 1/T, hence unimodal in log T, so a bounded Brent search over log T
    (scipy) finds the optimum to ~1e-10 in log T with no gradient code; one scalar does not need
    torch's LBFGS or a device.
    """
    logits, labels = _check(logits, labels)
    result = minimize_scalar(
        lambda log_t: _mean_nll(logits, labels, float(np.exp(log_t))),
        bounds=_LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-10},
    )
    return float(np.exp(result.x))


def temperature_scaled_ece(
    logits: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0, n_bins: int = 15
) -> float:
    """Mean over ``folds`` cross-validation folds of the ECE after temperature scaling (percent).

    As the original: shuffle the test indices with numpy's legacy generator seeded ``seed``, cut
    them into ``folds`` chunks of floor(n / folds) (the remainder is unused), and for each chunk
    fit T on it and measure the ECE of logits / T on the other chunks together.
    """
    logits, labels = _check(logits, labels)
    if folds < 2:
        raise MetricError(f"folds must be >= 2, got {folds}")
    chunk = len(labels) // folds
    if chunk == 0:
        raise MetricError(f"{len(labels)} samples are too few for {folds} folds")
    order = np.random.RandomState(seed).permutation(len(labels))
    chunks = [order[i * chunk : (i + 1) * chunk] for i in range(folds)]
    eces = []
    for i, fit_idx in enumerate(chunks):
        eval_idx = np.concatenate(chunks[:i] + chunks[i + 1 :])
        temperature = fit_temperature(logits[fit_idx], labels[fit_idx])
        eces.append(
            expected_calibration_error(logits[eval_idx] / temperature, labels[eval_idx], n_bins)
        )
    return float(np.mean(eces))


def calibration_record(logits: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """The calibration block of every protocol's result record (Table 9, percent):
    ``{"ece": ..., "ece_temperature_scaled": ...}``.

    ``labels`` index the columns of ``logits``. Both values are None for multi-label (n, C)
    targets, which have no softmax over classes, and for fewer samples than
    ``CALIBRATION_FOLDS``, where the cross-validated temperature has nothing to fit on.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) < CALIBRATION_FOLDS:
        return {"ece": None, "ece_temperature_scaled": None}
    return {
        "ece": expected_calibration_error(logits, labels),
        "ece_temperature_scaled": temperature_scaled_ece(
            logits, labels, folds=CALIBRATION_FOLDS, seed=CALIBRATION_SEED
        ),
    }
