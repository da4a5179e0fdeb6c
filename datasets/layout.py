"""Checks of the on-disk layout shared by the readers: required paths and list files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datasets.errors import DatasetError, missing_path_error
from datasets.registry import DatasetSpec
from datasets.sources import FileSource
from datasets.split import Split, check_targets


def require_file(path: Path, spec: DatasetSpec) -> Path:
    """``path`` if it is a file, else a DatasetError with the expected layout and data source."""
    if not path.is_file():
        raise missing_path_error(path, spec, "file")
    return path


def require_dir(path: Path, spec: DatasetSpec) -> Path:
    """``path`` if it is a folder, else a DatasetError with the expected layout and data source."""
    if not path.is_dir():
        raise missing_path_error(path, spec, "folder")
    return path


def read_lines(path: Path, spec: DatasetSpec) -> list[str]:
    """Non-empty, stripped lines of a required text file."""
    require_file(path, spec)
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line.strip() for line in handle]
    except UnicodeDecodeError as error:
        raise not_utf8_error(path) from error
    return [line for line in lines if line]


def not_utf8_error(path: Path) -> DatasetError:
    """A DatasetError naming the first line of ``path`` that is not UTF-8 (a decoder's own error
    names neither the file nor the line)."""
    for number, raw in enumerate(Path(path).read_bytes().split(b"\n"), 1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as error:
            return DatasetError(
                f"{path}, line {number}: not UTF-8 text (byte {raw[error.start]:#04x} at column "
                f"{error.start + 1}: {raw[:80]!r}); save the file as UTF-8"
            )
    return DatasetError(f"{path}: not UTF-8 text; save the file as UTF-8")


def file_split(
    spec: DatasetSpec,
    root: Path,
    part: str,
    classes: list[str],
    keys: list[str],
    targets: np.ndarray | list[int],
    origin: object,
    size: tuple[int, int] | None = None,
) -> Split:
    """A Split of image files under ``root`` after checking its labels against ``classes``.

    ``origin`` (usually the list file) is named in any error about the labels.
    """
    targets = np.asarray(targets, dtype=np.uint8 if spec.multilabel else np.int64)
    if not spec.multilabel:
        targets = targets.reshape(-1)
    if len(keys) == 0:
        raise DatasetError(f"{spec.name}: {origin} lists no images")
    check_targets(targets, classes, origin)
    return Split(
        dataset=spec.name,
        name=part,
        classes=classes,
        targets=targets,
        keys=keys,
        multilabel=spec.multilabel,
        source=FileSource(root, size),
    )
