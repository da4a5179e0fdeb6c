"""Picklable image sources: turn a sample key into an RGB PIL image.

A source is shared by every split of a dataset; splits only hold keys. Keeping the image
reading in small module-level classes lets DataLoader workers pickle them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from datasets.errors import DatasetError

# Errors PIL raises on unreadable, truncated or corrupt files.
IMAGE_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError, EOFError)


class FileSource:
    """Images stored as files; the key is the path relative to ``root``."""

    def __init__(self, root: str | Path, size: tuple[int, int] | None = None) -> None:
        self.root = str(root)
        self.size = size

    def __call__(self, key: str) -> Image.Image:
        path = Path(self.root) / key
        try:
            with Image.open(path) as image:
                if self.size is not None:
                    # BSCD-FSL order: resize (PIL's default filter) first, then convert.
                    image = image.resize(self.size)
                rgb = image.convert("RGB")
        except FileNotFoundError as error:
            raise DatasetError(f"image file missing: {path}") from error
        except IMAGE_ERRORS as error:
            raise DatasetError(f"cannot read image {path}: {error}") from error
        return rgb

    def merge(self, other: object) -> FileSource:
        if not isinstance(other, FileSource) or (other.root, other.size) != (self.root, self.size):
            raise DatasetError(f"cannot pool images from {self.root!r} and {other!r}")
        return self

    def __repr__(self) -> str:
        return f"FileSource({self.root!r}, size={self.size})"


class ArraySource:
    """Images held in memory as uint8 arrays (n, H, W, 3); the key is ``'<part>#<index>'``."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = dict(arrays)

    def __call__(self, key: str) -> Image.Image:
        part, _, index = key.rpartition("#")
        try:
            array = self.arrays[part][int(index)]
        except (KeyError, ValueError, IndexError) as error:
            raise DatasetError(f"no in-memory image with key {key!r}") from error
        return Image.fromarray(np.ascontiguousarray(array), mode="RGB")

    def merge(self, other: object) -> ArraySource:
        if not isinstance(other, ArraySource):
            raise DatasetError(f"cannot pool in-memory images with {other!r}")
        return ArraySource({**self.arrays, **other.arrays})

    def __repr__(self) -> str:
        return f"ArraySource({sorted(self.arrays)})"


class ImageOpener:
    """``opener(i)`` -> RGB image of sample ``i``; picklable for DataLoader workers."""

    def __init__(self, source: FileSource | ArraySource, keys: list[str]) -> None:
        self.source = source
        self.keys = keys

    def __call__(self, i: int) -> Image.Image:
        return self.source(self.keys[i])

    def __len__(self) -> int:
        return len(self.keys)
