"""Food-101: ``food-101/meta/{train,test}.json`` (class -> ['class/id', ...]).

The sample order is the original's: class by class in ``meta/classes.txt`` order, each
class's images as listed in the JSON. The val split is a seeded shuffle of positions, so
the order decides which images are val. torchvision's Food101 follows the JSON's key
order instead, which on the real files does not start with ``apple_pie``; that is why we
read the files ourselves.
"""

from __future__ import annotations

import json
from pathlib import Path

from datasets.errors import DatasetError
from datasets.layout import (
    file_split,
    not_utf8_error,
    read_lines,
    require_dir,
    require_file,
)
from datasets.registry import DatasetSpec
from datasets.split import Split


def read_food(spec: DatasetSpec, root: Path, part: str) -> Split:
    """The official train / test lists; classes (= labels) in ``meta/classes.txt`` order."""
    meta = root / "food-101" / "meta"
    listing_file = require_file(meta / f"{part}.json", spec)
    require_dir(root / "food-101" / "images", spec)
    classes = read_lines(meta / "classes.txt", spec)
    try:
        listing = json.loads(listing_file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise not_utf8_error(listing_file) from error
    except ValueError as error:  # JSONDecodeError
        raise DatasetError(f"{listing_file}: not a class -> list JSON ({error})") from error
    if not isinstance(listing, dict) or not all(
        isinstance(ids, list) and all(isinstance(i, str) for i in ids) for ids in listing.values()
    ):
        raise DatasetError(f"{listing_file}: not a class -> list JSON")
    if sorted(listing) != sorted(classes):
        raise DatasetError(f"{meta / 'classes.txt'} and {listing_file} list other classes")
    keys = [f"food-101/images/{image_id}.jpg" for name in classes for image_id in listing[name]]
    targets = [label for label, name in enumerate(classes) for _ in listing[name]]
    return file_split(spec, root, part, classes, keys, targets, listing_file)
