"""Per-image test outputs beside a result JSON (``<same stem>.npz``), so that any metric,
calibration or interval can be recomputed without rerunning."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from transfer.atomic import WriteError, atomic_path


def outputs_path(result: str | Path) -> Path:
    """``<same stem>.npz`` beside a result JSON."""
    result = Path(result)
    return result.with_name(result.stem + ".npz")


def write_test_outputs(
    result: str | Path,
    targets: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray | None = None,
    **extra: np.ndarray,
) -> Path:
    """Write a run's test outputs atomically beside its result JSON, so any metric, calibration or
    interval can be recomputed without rerunning.

    The ``.npz`` (compressed) holds ``targets`` ((n,) int64, or (n, C) uint8 0/1 for multi-label),
    ``scores`` ((n, C) logits, column ``j`` for class ``classes[j]``) and ``classes`` ((C,) int64,
    ``arange(C)`` unless given), plus any ``extra`` arrays. Single-label scores are stored as
    float16 after subtracting each row's maximum: the argmax (so accuracy), the softmax (so
    calibration) and the order within a row are unchanged, the top logit is exactly 0, and float16
    keeps ~3 significant digits of the gaps to it. Multi-label scores are ranked down each column
    (per-class AP), where float16 rounding of raw logits would create ties that change the AP, so
    they are stored as float32 (VOC2007's 4952 x 20 test set is small anyway).
    """
    targets = np.asarray(targets)
    scores = np.asarray(scores)
    if scores.ndim != 2 or len(scores) != len(targets):
        raise ValueError(f"scores must be (n, C) for {len(targets)} targets, got {scores.shape}")
    multilabel = targets.ndim == 2
    stored_targets = targets.astype(np.uint8 if multilabel else np.int64)
    stored_scores = compact_scores(scores, multilabel)
    classes = np.arange(scores.shape[1]) if classes is None else np.asarray(classes)
    if classes.shape != (scores.shape[1],):
        raise ValueError(f"classes must be ({scores.shape[1]},), got {classes.shape}")
    path = outputs_path(result)
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(
                handle,
                targets=stored_targets,
                scores=stored_scores,
                classes=classes.astype(np.int64),
                **extra,
            )
    except OSError as error:
        reason = error.strerror or error
        raise WriteError(f"cannot write the test outputs {path}: {reason}") from error
    return path


def compact_scores(scores: np.ndarray, multilabel: bool) -> np.ndarray:
    """Scores (..., C) as :func:`write_test_outputs` stores them: single-label as float16 after
    subtracting each row's maximum (gaps beyond float16's range, 65504, are clipped to it, which
    leaves the argmax and the softmax as they were); multi-label as float32."""
    scores = np.asarray(scores, dtype=np.float64)
    if multilabel:
        return scores.astype(np.float32)
    shifted = scores - scores.max(axis=-1, keepdims=True)
    return np.clip(shifted, float(np.finfo(np.float16).min), 0.0).astype(np.float16)


def read_test_outputs(result: str | Path) -> dict[str, np.ndarray]:
    """The arrays :func:`write_test_outputs` stored beside ``result`` (the JSON or the .npz)."""
    with np.load(outputs_path(result)) as stored:
        return {name: stored[name] for name in stored.files}



@dataclass
class PerImageOutputs:
    """A run's per-image test outputs, as :func:`write_test_outputs` stores them."""

    targets: np.ndarray
    scores: np.ndarray
    classes: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def write(self, result: str | Path) -> Path:
        return write_test_outputs(result, self.targets, self.scores, self.classes, **self.extra)
