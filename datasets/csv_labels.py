"""Cross-domain sets labelled by a CSV file: ISIC 2018 task 3 and ChestX-ray14 (BSCD-FSL)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from datasets.errors import DatasetError
from datasets.layout import file_split, not_utf8_error, require_file
from datasets.registry import DatasetSpec
from datasets.split import Split

ISIC_CSV = "ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv"
ISIC_CLASSES = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
CHESTX_CLASSES = [
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumothorax",
]
CHESTX_SIZE = (256, 256)


def _read_csv(path: Path, spec: DatasetSpec) -> pd.DataFrame:
    require_file(path, spec)
    try:
        return pd.read_csv(path)
    except UnicodeDecodeError as error:
        raise not_utf8_error(path) from error
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DatasetError(f"cannot parse CSV {path}: {error}") from error


def read_isic(spec: DatasetSpec, root: Path, part: str) -> Split:
    """Column 0 = image id, then one-hot MEL NV BCC AKIEC BKL DF VASC; label = argmax."""
    path = root / ISIC_CSV
    table = _read_csv(path, spec)
    if list(table.columns[1:]) != ISIC_CLASSES:
        raise DatasetError(
            f"{path}: expected columns image,{','.join(ISIC_CLASSES)}, got {list(table.columns)}"
        )
    onehot = table[ISIC_CLASSES].to_numpy(dtype=np.float64)
    keys = [f"ISIC2018_Task3_Training_Input/{name}.jpg" for name in table.iloc[:, 0].astype(str)]
    return file_split(spec, root, part, list(ISIC_CLASSES), keys, onehot.argmax(axis=1), path)


def read_chestx(spec: DatasetSpec, root: Path, part: str) -> Split:
    """Single-finding rows of the 7 used classes ("No Finding" / "Pneumonia" dropped).

    Images are resized to 256x256 on load, as in BSCD-FSL.
    """
    path = root / "Data_Entry_2017.csv"
    table = _read_csv(path, spec)
    if table.shape[1] < 2:
        raise DatasetError(f"{path}: expected image name and findings columns")
    index = {name: i for i, name in enumerate(CHESTX_CLASSES)}
    keys, targets = [], []
    names, findings_column = table.iloc[:, 0].astype(str), table.iloc[:, 1].astype(str)
    for name, findings in zip(names, findings_column, strict=True):
        labels = findings.split("|")
        if len(labels) == 1 and labels[0] in index:
            keys.append(f"images/{name}")
            targets.append(index[labels[0]])
    return file_split(spec, root, part, list(CHESTX_CLASSES), keys, targets, path, CHESTX_SIZE)
