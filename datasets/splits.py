"""THE entry point ``load_split``, with the paper's split rule (docs/protocols.md, "Datasets and
splits").

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

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from datasets import (
    cifar,
    csv_labels,
    digits,
    idx_files,
    image_folders,
    json_lists,
    mat_files,
    text_lists,
    voc,
)
from datasets.errors import DatasetError, missing_path_error
from datasets.registry import DatasetSpec, dataset_dir, get_dataset_spec
from datasets.split import Split, concat_splits
from transfer.console import progress

logger = logging.getLogger(__name__)

VAL_FRACTION = 0.2
VAL_SEED = 0

# dataset name -> its reader (one module per on-disk format family)
READERS: dict[str, Callable[..., Split]] = {
    "aircraft": text_lists.read_aircraft,
    "caltech101": text_lists.read_caltech101,
    "dtd": text_lists.read_dtd,
    "pets": text_lists.read_pets,
    "sun397": text_lists.read_sun397,
    "cars": mat_files.read_cars,
    "flowers": mat_files.read_flowers,
    "food": json_lists.read_food,
    "cifar10": cifar.read_cifar10,
    "cifar100": cifar.read_cifar100,
    "voc2007": voc.read_voc2007,
    "cropdiseases": image_folders.read_cropdiseases,
    "eurosat": image_folders.read_eurosat,
    "isic": csv_labels.read_isic,
    "chestx": csv_labels.read_chestx,
    "digits": digits.read_digits,
    "fashion-mnist": idx_files.read_fashion_mnist,
}


def random_val_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices of the 20% rule: shuffle arange(n) with numpy seed 0.

    ``np.random.RandomState(0).shuffle`` draws the same permutation as
    ``np.random.seed(0); np.random.shuffle`` without touching the global state.
    """
    indices = np.arange(n)
    np.random.RandomState(VAL_SEED).shuffle(indices)
    n_val = int(np.floor(VAL_FRACTION * n))
    return indices[n_val:], indices[:n_val]


def _drop_broken(split: Split) -> Split:
    """Open every image; keep the readable ones and print how many were skipped."""
    keep = []
    for i in progress(range(len(split)), desc=f"checking {split.dataset}/{split.name}",
                      leave=False):
        try:
            split.load_image(i)
        except DatasetError:
            continue
        keep.append(i)
    skipped = len(split) - len(keep)
    if skipped:
        logger.warning("%s/%s: skipped %d unreadable image(s)", split.dataset, split.name, skipped)
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
    read = READERS[spec.name]

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
