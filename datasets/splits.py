"""The Split record and THE entry point ``load_split`` with SPEC section 2's split rule.

Readers (one module per on-disk format) return the official parts of a dataset ("train",
"val", "test"); this module alone turns them into the splits protocols ask for:

- predefined val (aircraft, dtd, flowers, voc2007): train / val / test as given,
  trainval = train + val;
- otherwise: val = a random 20% of the official training set (numpy seed 0), train = the
  rest, trainval = the whole official training set in its original order;
- fewshot = every part pooled (many-shot sets except voc2007; train + val + test for the
  predefined-val sets, as the original since its commit 05d01cc), or the training data of
  the cross-domain sets.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from datasets.errors import DatasetError, missing_path_error
from datasets.registry import DatasetSpec, dataset_dir, get_dataset_spec
from datasets.sources import ArraySource, FileSource, ImageOpener

VAL_FRACTION = 0.2
VAL_SEED = 0

# dataset name -> "module:function" of its reader; imported lazily so that one broken
# optional dependency never blocks the other datasets.
READERS: dict[str, str] = {
    "aircraft": "datasets.text_lists:read_aircraft",
    "caltech101": "datasets.text_lists:read_caltech101",
    "dtd": "datasets.text_lists:read_dtd",
    "pets": "datasets.text_lists:read_pets",
    "sun397": "datasets.text_lists:read_sun397",
    "cars": "datasets.mat_files:read_cars",
    "flowers": "datasets.mat_files:read_flowers",
    "food": "datasets.json_lists:read_food",
    "cifar10": "datasets.cifar:read_cifar10",
    "cifar100": "datasets.cifar:read_cifar100",
    "voc2007": "datasets.voc:read_voc2007",
    "cropdiseases": "datasets.image_folders:read_cropdiseases",
    "eurosat": "datasets.image_folders:read_eurosat",
    "isic": "datasets.csv_labels:read_isic",
    "chestx": "datasets.csv_labels:read_chestx",
    "digits": "datasets.digits:read_digits",
}


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


def random_val_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices of SPEC's 20% rule: shuffle arange(n) with numpy seed 0.

    ``np.random.RandomState(0).shuffle`` draws the same permutation as
    ``np.random.seed(0); np.random.shuffle`` without touching the global state.
    """
    indices = np.arange(n)
    np.random.RandomState(VAL_SEED).shuffle(indices)
    n_val = int(np.floor(VAL_FRACTION * n))
    return indices[n_val:], indices[:n_val]


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


def _reader(spec: DatasetSpec):
    module_name, _, function = READERS[spec.name].partition(":")
    return getattr(importlib.import_module(module_name), function)


def _drop_broken(split: Split) -> Split:
    """Open every image; keep the readable ones and print how many were skipped."""
    keep = []
    for i in tqdm(range(len(split)), desc=f"checking {split.dataset}/{split.name}", leave=False):
        try:
            split.load_image(i)
        except DatasetError:
            continue
        keep.append(i)
    skipped = len(split) - len(keep)
    if skipped:
        print(f"{split.dataset}/{split.name}: skipped {skipped} unreadable image(s)")
    return split.subset(keep, split.name)


def load_split(
    dataset: str,
    split: str,
    data_root: str | os.PathLike | None = None,
    *,
    skip_broken: bool = False,
    download: bool = True,
    split_files_dir: str | os.PathLike | None = None,
) -> Split:
    """Load ``split`` ("train", "val", "trainval", "test" or "fewshot") of ``dataset``.

    ``data_root`` defaults to ``default_data_root()``. ``skip_broken`` opens every image
    and drops unreadable ones (default: an unreadable image raises when it is loaded).
    ``download`` lets the sets the original fetched automatically (CIFAR) download when
    missing. ``split_files_dir`` replaces the shipped Caltech101 split files.
    """
    spec = get_dataset_spec(dataset)
    if split not in spec.splits:
        raise DatasetError(f"{dataset} has no split {split!r}; available: {', '.join(spec.splits)}")
    options: dict[str, object] = {}
    if split_files_dir is not None:
        if spec.name != "caltech101":
            raise DatasetError(f"split_files_dir applies to caltech101 only, not {dataset}")
        options["split_files_dir"] = Path(split_files_dir)
    if spec.auto_download:
        options["download"] = download
    root = dataset_dir(spec, data_root)
    if not spec.demo and not (spec.auto_download and download) and not root.is_dir():
        raise missing_path_error(root, spec, "dataset folder")
    read = _reader(spec)

    def part(name: str) -> Split:
        return read(spec, root, name, **options)

    result = _compose(spec, split, part)
    return _drop_broken(result) if skip_broken else result


def _compose(spec: DatasetSpec, split: str, part) -> Split:
    if spec.few_shot_only:
        return _renamed(part("train"), split)
    if spec.predefined_val:
        if split in ("train", "val", "test"):
            return part(split)
        if split == "trainval":
            return concat_splits([part("train"), part("val")], split)
        return concat_splits([part("train"), part("val"), part("test")], split)
    if split == "test":
        return part("test")
    if split == "fewshot":
        return concat_splits([part("train"), part("test")], split)
    official = part("train")
    if split == "trainval":
        return _renamed(official, split)
    train_idx, val_idx = random_val_indices(len(official))
    return official.subset(train_idx if split == "train" else val_idx, split)


def _renamed(split: Split, name: str) -> Split:
    split.name = name
    return split
