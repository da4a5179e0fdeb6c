"""Datasets whose splits are plain text lists: Aircraft, Caltech101, DTD, Pets, SUN397.

torchvision has classes for most of these, but each expects another folder layout than the
official one (DTD under ``dtd/dtd/``, Pets under ``oxford-iiit-pet/``, SUN397 without
partitions), Aircraft takes its class order from ``variants.txt`` instead of sorting, and
Caltech101 drops BACKGROUND_Google. Reading the lists directly keeps the
official splits exact.
"""

from __future__ import annotations

from pathlib import Path

from datasets.errors import DatasetError
from datasets.layout import file_split, read_lines
from datasets.registry import DatasetSpec
from datasets.split import Split

SHIPPED_CALTECH101_SPLITS = Path(__file__).resolve().parent / "caltech101_splits"


def _index(classes: list[str]) -> dict[str, int]:
    return {name: i for i, name in enumerate(classes)}


def read_aircraft(spec: DatasetSpec, root: Path, part: str) -> Split:
    """``data/images_variant_<part>.txt``: ``<id> <variant name>``; classes = sorted variants."""
    lists = {p: root / "data" / f"images_variant_{p}.txt" for p in ("train", "val", "test")}
    rows = {p: [line.split(" ", 1) for line in read_lines(path, spec)] for p, path in lists.items()}
    for p, entries in rows.items():
        bad = [" ".join(e) for e in entries if len(e) != 2]
        if bad:
            raise DatasetError(f"{lists[p]}: expected '<id> <variant>' lines, got {bad[0]!r}")
    # Sorted over all three lists so that every part shares one class order.
    classes = sorted({variant for entries in rows.values() for _, variant in entries})
    index = _index(classes)
    entries = rows[part]
    keys = [f"data/images/{image_id}.jpg" for image_id, _ in entries]
    targets = [index[variant] for _, variant in entries]
    return file_split(spec, root, part, classes, keys, targets, lists[part])


def read_caltech101(
    spec: DatasetSpec, root: Path, part: str, split_files_dir: Path | None = None
) -> Split:
    """The paper's split files ``<class>/<file> <label>`` (default: the shipped copies)."""
    split_dir = Path(split_files_dir) if split_files_dir is not None else SHIPPED_CALTECH101_SPLITS
    lists = {p: split_dir / f"{p}.txt" for p in ("train", "test")}
    names: dict[int, str] = {}
    first_seen: dict[int, tuple[Path, str]] = {}
    parsed: dict[str, tuple[list[str], list[int]]] = {}
    for p, path in lists.items():
        keys, targets = [], []
        for line in read_lines(path, spec):
            try:
                relpath, label_text = line.rsplit(" ", 1)
                label = int(label_text)
            except ValueError as error:
                raise DatasetError(
                    f"{path}: expected '<class>/<file> <label>', got {line!r}"
                ) from error
            folder = relpath.split("/", 1)[0]
            first_seen.setdefault(label, (path, line))
            if names.setdefault(label, folder) != folder:
                raise DatasetError(
                    f"{path}: label {label} used for {folder!r} and {names[label]!r}"
                )
            keys.append(f"caltech101/101_ObjectCategories/{relpath}")
            targets.append(label)
        parsed[p] = (keys, targets)
    expected = set(range(len(names)))
    if set(names) != expected:
        label = min(set(names) - expected)
        path, line = first_seen[label]
        raise DatasetError(
            f"{path}: label {label} in {line!r} out of range: labels must run "
            f"0..{len(names) - 1} without gaps (one per class folder)"
        )
    classes = [names[label] for label in range(len(names))]
    keys, targets = parsed[part]
    return file_split(spec, root, part, classes, keys, targets, lists[part])


def read_dtd(spec: DatasetSpec, root: Path, part: str) -> Split:
    """Partition 1: ``labels/<part>1.txt`` lines ``<class>/<file>``; classes sorted."""
    lists = {p: root / "labels" / f"{p}1.txt" for p in ("train", "val", "test")}
    rows = {p: read_lines(path, spec) for p, path in lists.items()}
    for p, lines in rows.items():
        bad = [line for line in lines if "/" not in line]
        if bad:
            raise DatasetError(f"{lists[p]}: expected '<class>/<file>' lines, got {bad[0]!r}")
    classes = sorted({line.split("/", 1)[0] for lines in rows.values() for line in lines})
    index = _index(classes)
    lines = rows[part]
    keys = [f"images/{line}" for line in lines]
    targets = [index[line.split("/", 1)[0]] for line in lines]
    return file_split(spec, root, part, classes, keys, targets, lists[part])


def read_pets(spec: DatasetSpec, root: Path, part: str) -> Split:
    """``annotations/{trainval,test}.txt``: ``<name> <class-id 1..37> <species> <breed>``.

    Part "train" is the official trainval list. Class names are the breed prefixes of
    the image names (as in torchvision), ordered by class id.
    """
    lists = {
        "train": root / "annotations" / "trainval.txt",
        "test": root / "annotations" / "test.txt",
    }
    names: dict[int, str] = {}
    parsed: dict[str, tuple[list[str], list[int]]] = {}
    for p, path in lists.items():
        keys, targets = [], []
        for line in read_lines(path, spec):
            if line.startswith("#"):
                continue
            fields = line.split()
            try:
                class_id = int(fields[1])
            except (IndexError, ValueError) as error:
                raise DatasetError(
                    f"{path}: expected '<name> <class-id> ...', got {line!r}"
                ) from error
            if class_id < 1:
                raise DatasetError(f"{path}: class id {class_id} out of range (ids start at 1)")
            names.setdefault(class_id, fields[0].rsplit("_", 1)[0])
            keys.append(f"images/{fields[0]}.jpg")
            targets.append(class_id - 1)
        parsed[p] = (keys, targets)
    classes = [names.get(i, f"class-{i}") for i in range(1, max(names) + 1)]
    keys, targets = parsed[part]
    return file_split(spec, root, part, classes, keys, targets, lists[part])


def read_sun397(spec: DatasetSpec, root: Path, part: str) -> Split:
    """Partition 01: ``Training_01.txt`` / ``Testing_01.txt``; classes from ``ClassName.txt``.

    Classes are the ``ClassName.txt`` entries without their ``/<letter>/`` prefix, sorted
    (as in the original). An image's class is its exact folder path. The original took the
    first class (in sorted order) whose ``'/<class>/'`` occurs in the image's full path:
    slashes on both sides, so ``barn`` is never ``bar``. The two rules disagree only where
    an earlier class's ``/<name>/`` occurs elsewhere in that path: a folder inside a nested
    class path, or a folder of the data root itself (``/home/me/office/...``).
    """
    class_file = root / "ClassName.txt"
    classes = sorted(line[3:] for line in read_lines(class_file, spec))
    index = _index(classes)
    path = root / ("Training_01.txt" if part == "train" else "Testing_01.txt")
    keys, targets = [], []
    for line in read_lines(path, spec):
        relpath = line.lstrip("/")
        folder = relpath.rsplit("/", 1)[0]
        name = folder.split("/", 1)[1] if "/" in folder else ""
        if name not in index:
            raise DatasetError(f"{path}: {line!r} is in no class listed in {class_file}")
        keys.append(relpath)
        targets.append(index[name])
    return file_split(spec, root, part, classes, keys, targets, path)
