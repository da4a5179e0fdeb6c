"""Food-101: ``food-101/meta/{train,test}.json`` (class -> ['class/id', ...]).

torchvision's Food101 reads exactly this layout (``<root>/food-101/meta``, no checksum in
the constructor), so we use it and only turn its absolute paths into relative keys.
"""

from __future__ import annotations

import json
from pathlib import Path

from torchvision.datasets import Food101

from datasets.errors import DatasetError
from datasets.layout import file_split, read_lines, require_dir, require_file
from datasets.registry import DatasetSpec
from datasets.splits import Split


def read_food(spec: DatasetSpec, root: Path, part: str) -> Split:
    """The official train / test lists; classes sorted (= ``meta/classes.txt``)."""
    meta = root / "food-101" / "meta"
    require_file(meta / f"{part}.json", spec)
    require_dir(root / "food-101" / "images", spec)
    try:
        food = Food101(str(root), split=part)
    except (json.JSONDecodeError, AttributeError, TypeError) as error:
        raise DatasetError(f"{meta / f'{part}.json'}: not a class -> list JSON ({error})") from None
    classes_file = meta / "classes.txt"
    if classes_file.is_file() and read_lines(classes_file, spec) != food.classes:
        raise DatasetError(f"{classes_file} disagrees with the classes of {meta / 'train.json'}")
    # Food101 exposes its file list only as the private _image_files / _labels.
    keys = [Path(path).relative_to(root).as_posix() for path in food._image_files]
    return file_split(
        spec, root, part, list(food.classes), keys, food._labels, meta / f"{part}.json"
    )
