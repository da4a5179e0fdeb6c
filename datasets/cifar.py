"""CIFAR-10 / CIFAR-100 in torchvision's own layout (pickled batches).

torchvision's CIFAR classes verify the md5 sum of every batch in the constructor, which
rejects anything but the official archive; we read the same pickles the way torchvision
does and use torchvision only to download them when they are missing (as the original).
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np

from datasets.errors import DatasetError, missing_path_error
from datasets.registry import DatasetSpec
from datasets.sources import ArraySource
from datasets.split import Split, check_targets

logger = logging.getLogger(__name__)

# name -> (batch folder, train batches, test batches, meta file, class-name key, label key)
CIFAR_FILES = {
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "batches.meta",
        "label_names",
        "labels",
    ),
    "cifar100": (
        "cifar-100-python",
        ["train"],
        ["test"],
        "meta",
        "fine_label_names",
        "fine_labels",
    ),
}


def _unpickle(path: Path) -> dict:
    # The batches are Python-2 pickles; latin1 decodes their byte strings (as torchvision
    # does). Only the dataset files the user pointed us at are ever unpickled.
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError) as error:
        raise DatasetError(f"cannot read CIFAR batch {path}: {error}") from error


def _download(spec: DatasetSpec, root: Path) -> None:
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if spec.name == "cifar10" else CIFAR100
    logger.info("%s: not found under %s, downloading with torchvision", spec.name, root)
    try:
        cls(str(root), train=True, download=True)
    except (OSError, RuntimeError) as error:
        raise DatasetError(
            f"{spec.name}: download into {root} failed ({error}); get the data: "
            f"{spec.download_hint}"
        ) from error


def read_cifar(spec: DatasetSpec, root: Path, part: str, download: bool = True) -> Split:
    """The official train (all training batches) or test part; classes from the meta file."""
    folder, train_batches, test_batches, meta_name, names_key, labels_key = CIFAR_FILES[spec.name]
    batch_dir = root / folder
    needed = [batch_dir / name for name in [*train_batches, *test_batches, meta_name]]
    if download and not all(path.is_file() for path in needed):
        _download(spec, root)
    for path in needed:
        if not path.is_file():
            raise missing_path_error(path, spec, "file")
    meta_path = batch_dir / meta_name
    meta = _unpickle(meta_path)
    if names_key not in meta:
        raise DatasetError(f"{meta_path}: no {names_key!r} entry")
    classes = [str(name) for name in meta[names_key]]
    arrays, keys, targets = {}, [], []
    for name in train_batches if part == "train" else test_batches:
        path = batch_dir / name
        batch = _unpickle(path)
        try:
            data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            labels = np.asarray(batch[labels_key], dtype=np.int64)
        except (KeyError, ValueError) as error:
            raise DatasetError(
                f"{path}: expected 'data' (n x 3072 uint8) and {labels_key!r} ({error})"
            ) from error
        if len(labels) != len(data):
            raise DatasetError(f"{path}: {len(data)} images but {len(labels)} labels")
        check_targets_in_range(labels, classes, path)
        arrays[name] = data.transpose(0, 2, 3, 1)
        keys += [f"{name}#{i}" for i in range(len(labels))]
        targets.append(labels)
    all_targets = np.concatenate(targets)
    check_targets(all_targets, classes, batch_dir / ", ".join(arrays))
    return Split(
        dataset=spec.name,
        name=part,
        classes=classes,
        targets=all_targets,
        keys=keys,
        multilabel=False,
        source=ArraySource(arrays),
    )


def check_targets_in_range(labels: np.ndarray, classes: list[str], path: Path) -> None:
    """Name the batch file holding a label outside the class list."""
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        bad = labels[(labels < 0) | (labels >= len(classes))][0]
        raise DatasetError(f"{path}: label {bad} out of range for {len(classes)} classes")


def read_cifar10(spec: DatasetSpec, root: Path, part: str, download: bool = True) -> Split:
    """CIFAR-10: ``cifar-10-batches-py/data_batch_1..5``, ``test_batch``, ``batches.meta``."""
    return read_cifar(spec, root, part, download)


def read_cifar100(spec: DatasetSpec, root: Path, part: str, download: bool = True) -> Split:
    """CIFAR-100 (fine labels): ``cifar-100-python/train``, ``test``, ``meta``."""
    return read_cifar(spec, root, part, download)
