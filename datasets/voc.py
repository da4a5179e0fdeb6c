"""PASCAL VOC 2007 as a 20-way multi-label classification set.

torchvision's VOCDetection yields raw XML annotations; the classification labels live in
``ImageSets/Main/<class>_<part>.txt`` (lines ``<id> <-1|0|1>``), which we read directly.
Target = (label == 1): "difficult" (0) counts as negative.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datasets.errors import DatasetError
from datasets.layout import file_split, read_lines
from datasets.registry import DatasetSpec
from datasets.split import Split

VOC_CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]  # fmt: skip
VOC_ROOT = "VOCdevkit/VOC2007"


def read_voc2007(spec: DatasetSpec, root: Path, part: str) -> Split:
    """Image ids in the order of the first class file; every class file must list the same ids."""
    main = root / VOC_ROOT / "ImageSets" / "Main"
    ids: list[str] | None = None
    columns = []
    for name in VOC_CLASSES:
        path = main / f"{name}_{part}.txt"
        rows = [line.split() for line in read_lines(path, spec)]
        try:
            file_ids = [row[0] for row in rows]
            labels = np.array([int(row[1]) for row in rows], dtype=np.int64)
        except (IndexError, ValueError) as error:
            raise DatasetError(f"{path}: expected '<id> <-1|0|1>' lines") from error
        if not np.isin(labels, (-1, 0, 1)).all():
            raise DatasetError(f"{path}: labels must be -1, 0 or 1, found {sorted(set(labels))}")
        if ids is None:
            ids = file_ids
        elif file_ids != ids:
            first = main / f"{VOC_CLASSES[0]}_{part}.txt"
            raise DatasetError(f"{path} lists other image ids than {first}")
        columns.append(labels == 1)
    targets = np.stack(columns, axis=1).astype(np.uint8)
    keys = [f"{VOC_ROOT}/JPEGImages/{image_id}.jpg" for image_id in ids]
    return file_split(spec, root, part, list(VOC_CLASSES), keys, targets, main / f"*_{part}.txt")
