"""The ``Split`` record every reader returns and every protocol reads: class names, per-sample
keys and targets, an image source, and a content identity for caches and provenance."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from datasets.errors import DatasetError
from datasets.sources import ArraySource, FileSource, ImageOpener


@dataclass
class Split:
    """One split of one dataset: class names, per-sample keys and targets, and an image source.

    ``targets`` is int64 (n,) or, for multi-label sets, uint8 (n, C) of 0/1. ``keys`` are
    relative paths (or ``part#index`` for in-memory sets), so ``identity`` depends only on
    the content, never on where the data root is.
    """

    dataset: str
    name: str
    classes: list[str]
    targets: np.ndarray
    keys: list[str]
    multilabel: bool
    source: FileSource | ArraySource = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.keys) != len(self.targets):
            raise DatasetError(
                f"{self.dataset}/{self.name}: {len(self.keys)} keys but {len(self.targets)} targets"
            )

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def opener(self) -> ImageOpener:
        """A picklable ``opener(i) -> PIL.Image`` for DataLoader workers."""
        return ImageOpener(self.source, self.keys)

    def load_image(self, i: int) -> Image.Image:
        """The RGB image of sample ``i``; an unreadable file raises DatasetError naming it."""
        return self.source(self.keys[i])

    @property
    def identity(self) -> str:
        """sha256 of (dataset, keys, targets): equal content gives an equal identity."""
        digest = hashlib.sha256()
        digest.update(self.dataset.encode() + b"\0")
        digest.update("\n".join(self.keys).encode() + b"\0")
        targets = np.ascontiguousarray(self.targets)
        digest.update(f"{targets.dtype.str}{targets.shape}".encode() + b"\0")
        digest.update(targets.tobytes())
        return digest.hexdigest()

    def subset(self, indices: Sequence[int] | np.ndarray, name: str) -> Split:
        """The samples at ``indices`` (in that order) as a new split called ``name``."""
        indices = np.asarray(indices, dtype=np.int64)
        return Split(
            dataset=self.dataset,
            name=name,
            classes=list(self.classes),
            targets=self.targets[indices],
            keys=[self.keys[i] for i in indices],
            multilabel=self.multilabel,
            source=self.source,
        )

    def class_counts(self) -> np.ndarray:
        """Images per class (positives per class for multi-label sets)."""
        if self.multilabel:
            return self.targets.sum(axis=0).astype(np.int64)
        return np.bincount(self.targets, minlength=len(self.classes))


def concat_splits(parts: Sequence[Split], name: str) -> Split:
    """Pool ``parts`` (same dataset, same classes) in order into one split called ``name``."""
    first = parts[0]
    source = first.source
    for part in parts[1:]:
        if part.classes != first.classes:
            raise DatasetError(
                f"{first.dataset}: parts {first.name!r} and {part.name!r} disagree on classes"
            )
        source = source.merge(part.source)
    return Split(
        dataset=first.dataset,
        name=name,
        classes=list(first.classes),
        targets=np.concatenate([p.targets for p in parts]),
        keys=[k for p in parts for k in p.keys],
        multilabel=first.multilabel,
        source=source,
    )


def check_targets(targets: np.ndarray, classes: Sequence[str], origin: object) -> None:
    """Labels in range and every class present, else a DatasetError naming ``origin``."""
    n_classes = len(classes)
    if targets.ndim == 1:
        if len(targets) and (targets.min() < 0 or targets.max() >= n_classes):
            bad = targets[(targets < 0) | (targets >= n_classes)][0]
            raise DatasetError(f"{origin}: label {bad} out of range for {n_classes} classes")
        counts = np.bincount(targets, minlength=n_classes)
    else:
        counts = targets.sum(axis=0)
    empty = [classes[c] for c in np.flatnonzero(counts == 0)]
    if empty:
        raise DatasetError(f"{origin}: no images for class(es) {', '.join(map(str, empty[:10]))}")
