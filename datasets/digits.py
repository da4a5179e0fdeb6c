"""The demo dataset: scikit-learn's bundled 8x8 digits, usable with no files on disk.

Official parts: "train" = the first 1200 images in scikit-learn's order, "test" = the
remaining 597. Pixel values 0..16 are scaled to 0..255 and repeated over RGB.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from datasets.registry import DatasetSpec
from datasets.sources import ArraySource
from datasets.split import Split

N_TRAIN = 1200


@lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (1797, 8, 8, 3), labels int64) in scikit-learn's bundled order."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    gray = np.round(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1), bunch.target.astype(np.int64)


def read_digits(spec: DatasetSpec, root: Path, part: str) -> Split:
    """The "train" or "test" part; ``root`` is ignored (the data ship with scikit-learn)."""
    images, labels = digits_arrays()
    indices = np.arange(N_TRAIN) if part == "train" else np.arange(N_TRAIN, len(labels))
    return Split(
        dataset=spec.name,
        name=part,
        classes=[str(d) for d in range(10)],
        targets=labels[indices],
        keys=[f"digits#{i}" for i in indices],
        multilabel=False,
        source=ArraySource({"digits": images}),
    )
