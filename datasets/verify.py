"""Check a dataset on disk: its layout, per-split image and class counts, and (deep) every image."""

from __future__ import annotations

import os
from pathlib import Path

from datasets.errors import DatasetError
from datasets.registry import dataset_dir, default_data_root, get_dataset_spec
from datasets.sources import FileSource
from datasets.splits import Split, load_split
from transfer.console import progress

MAX_LISTED = 10


def verify_dataset(
    name: str,
    data_root: str | os.PathLike | None = None,
    deep: bool = False,
    split_files_dir: str | os.PathLike | None = None,
) -> dict:
    """Load every split of ``name`` and check its images; never downloads.

    Returns ``{dataset, data_root, splits: {split: {images, classes}}, ok}`` (plus
    ``missing`` / ``unreadable`` lists of keys when not ok). A wrong layout raises the
    loader's DatasetError (missing path, expected layout, where to get the data).
    """
    spec = get_dataset_spec(name)
    root = Path(data_root) if data_root is not None else default_data_root()
    splits: dict[str, Split] = {
        split: load_split(name, split, root, download=False, split_files_dir=split_files_dir)
        for split in spec.splits
    }
    summary: dict = {
        "dataset": name,
        "data_root": str(root),
        "splits": {
            split: {
                "images": len(s),
                "classes": int((s.class_counts() > 0).sum()),
            }
            for split, s in splits.items()
        },
    }
    missing, unreadable = _check_images(list(splits.values()), deep)
    summary["ok"] = not missing and not unreadable
    if missing:
        summary["missing"] = missing[:MAX_LISTED]
        summary["missing_count"] = len(missing)
    if unreadable:
        summary["unreadable"] = unreadable[:MAX_LISTED]
        summary["unreadable_count"] = len(unreadable)
    if not spec.demo:
        summary["folder"] = str(dataset_dir(spec, root))
    return summary


def _check_images(splits: list[Split], deep: bool) -> tuple[list[str], list[str]]:
    """(missing files, unreadable images) over the union of the splits' keys."""
    seen: dict[str, Split] = {}
    for split in splits:
        for key in split.keys:
            seen.setdefault(key, split)
    missing, unreadable = [], []
    for key, split in progress(seen.items(), total=len(seen), desc="checking images",
                              enabled=len(seen) >= 1000):
        source = split.source
        if isinstance(source, FileSource) and not (Path(source.root) / key).is_file():
            missing.append(str(Path(source.root) / key))
            continue
        if deep:
            try:
                source(key)
            except DatasetError as error:
                unreadable.append(str(error))
    return missing, unreadable
