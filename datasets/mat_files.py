"""Datasets described by MATLAB files: Stanford Cars and Oxford Flowers-102.

torchvision's StanfordCars wants ``stanford_cars/`` with the test annotations outside
``devkit/`` and ``cars_meta.mat`` present, and Flowers102 checks md5 sums of its files in
the constructor; the official layout differs, so we read the same .mat files with scipy.io.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import loadmat

from datasets.errors import DatasetError
from datasets.layout import file_split, require_file
from datasets.registry import DatasetSpec
from datasets.split import Split

CARS_ANNOTATIONS = {
    "train": ("devkit/cars_train_annos.mat", "cars_train"),
    "test": ("devkit/cars_test_annos_withlabels.mat", "cars_test"),
}
FLOWERS_SET_IDS = {"train": "trnid", "val": "valid", "test": "tstid"}


def _load_mat(path: Path, spec: DatasetSpec) -> dict:
    require_file(path, spec)
    try:
        return loadmat(path, squeeze_me=True)
    except (ValueError, TypeError, OSError) as error:
        raise DatasetError(f"cannot read MATLAB file {path}: {error}") from error


def _field(mat: dict, key: str, path: Path) -> np.ndarray:
    if key not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetError(f"{path}: no variable {key!r} (found {found})")
    return np.atleast_1d(mat[key])


def _cars_annotations(root: Path, part: str, spec: DatasetSpec) -> tuple[list[str], list[int]]:
    mat_name, folder = CARS_ANNOTATIONS[part]
    path = root / mat_name
    annotations = _field(_load_mat(path, spec), "annotations", path)
    names = annotations.dtype.names or ()
    if "fname" not in names or "class" not in names:
        raise DatasetError(f"{path}: 'annotations' needs fields 'fname' and 'class', has {names}")
    keys = [f"{folder}/{a['fname']}" for a in annotations]
    labels = [int(a["class"]) for a in annotations]
    return keys, labels


def read_cars(spec: DatasetSpec, root: Path, part: str) -> Split:
    """``annotations`` structs (``fname``, ``class`` 1..196) of the train / test .mat files.

    Class names come from ``devkit/cars_meta.mat`` when present, else are the class ids.
    """
    parts = {p: _cars_annotations(root, p, spec) for p in CARS_ANNOTATIONS}
    meta_path = root / "devkit" / "cars_meta.mat"
    if meta_path.is_file():
        classes = [str(n) for n in _field(_load_mat(meta_path, spec), "class_names", meta_path)]
    else:
        top = max(max(labels) for _, labels in parts.values())
        classes = [str(i) for i in range(1, top + 1)]
    keys, labels = parts[part]
    targets = np.asarray(labels, dtype=np.int64) - 1
    return file_split(spec, root, part, classes, keys, targets, root / CARS_ANNOTATIONS[part][0])


def read_flowers(spec: DatasetSpec, root: Path, part: str) -> Split:
    """``setid.mat`` (trnid / valid / tstid image ids), ``imagelabels.mat`` (labels 1..102)."""
    setid_path, labels_path = root / "setid.mat", root / "imagelabels.mat"
    image_ids = _field(_load_mat(setid_path, spec), FLOWERS_SET_IDS[part], setid_path)
    labels = _field(_load_mat(labels_path, spec), "labels", labels_path).astype(np.int64)
    image_ids = image_ids.astype(np.int64)
    if image_ids.min() < 1 or image_ids.max() > len(labels):
        raise DatasetError(
            f"{setid_path}: image ids must be 1..{len(labels)} (the entries of {labels_path})"
        )
    if labels.min() < 1:
        raise DatasetError(f"{labels_path}: label {labels.min()} out of range (labels start at 1)")
    classes = _flower_names(int(labels.max()))
    keys = [f"jpg/image_{i:05d}.jpg" for i in image_ids]
    targets = labels[image_ids - 1] - 1
    return file_split(spec, root, part, classes, keys, targets, setid_path)


def _flower_names(count: int) -> list[str]:
    """torchvision's 102 flower names when the files hold all 102 classes, else the ids."""
    from torchvision.datasets import Flowers102

    names = list(getattr(Flowers102, "classes", []))
    return names if len(names) == count else [str(i) for i in range(1, count + 1)]
