"""A torch Dataset over a Split: (transformed image, target tensor) pairs."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from datasets.split import Split


class ImageDataset(Dataset):
    """``dataset[i] = (transform(image_i), target_i)``; long targets, float for multi-label.

    Holds only the split's picklable opener and targets, so DataLoader workers can copy it.
    """

    def __init__(self, split: Split, transform: Callable | None = None) -> None:
        self.opener = split.opener
        self.transform = transform
        dtype = torch.float32 if split.multilabel else torch.long
        self.targets = torch.as_tensor(split.targets).to(dtype)
        self.classes = list(split.classes)
        self.multilabel = split.multilabel

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[object, torch.Tensor]:
        image = self.opener(i)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[i]
