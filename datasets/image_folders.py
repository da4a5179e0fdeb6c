"""Cross-domain sets stored as ``<class>/<image>`` folders: CropDiseases and EuroSAT.

torchvision's ImageFolder reads this layout directly (classes = sorted folder names).
"""

from __future__ import annotations

from pathlib import Path

from torchvision.datasets import ImageFolder

from datasets.errors import DatasetError
from datasets.layout import file_split, require_dir
from datasets.registry import DatasetSpec
from datasets.split import Split

IMAGE_ROOTS = {"cropdiseases": "dataset/train", "eurosat": "2750"}


def _read_image_folder(spec: DatasetSpec, root: Path, part: str) -> Split:
    folder = require_dir(root / IMAGE_ROOTS[spec.name], spec)
    try:
        found = ImageFolder(str(folder))
    except FileNotFoundError as error:  # no class folder, or a class folder with no image
        raise DatasetError(f"{spec.name}: {folder}: {error}") from error
    keys = [Path(path).relative_to(root).as_posix() for path, _ in found.samples]
    targets = [label for _, label in found.samples]
    return file_split(spec, root, part, list(found.classes), keys, targets, folder)


def read_cropdiseases(spec: DatasetSpec, root: Path, part: str) -> Split:
    """``dataset/train/<class>/*`` (the BSCD-FSL training data)."""
    return _read_image_folder(spec, root, part)


def read_eurosat(spec: DatasetSpec, root: Path, part: str) -> Split:
    """``2750/<class>/*``."""
    return _read_image_folder(spec, root, part)
