"""The three image transforms of SPEC section 3, each carrying a stable id for the feature cache."""

from __future__ import annotations

from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KINDS = ("eval", "train", "fewshot")
FEW_SHOT_RESIZE_FACTOR = 1.15


class NamedCompose(T.Compose):
    """A Compose that knows its ``transform_id`` (so caches can key on it)."""

    def __init__(self, steps: list, transform_id: str) -> None:
        super().__init__(steps)
        self.transform_id = transform_id


def transform_id(kind: str, image_size: int, normalize: bool) -> str:
    """Stable id such as ``"eval-224-norm"`` or ``"fewshot-224-nonorm"``."""
    if kind not in KINDS:
        raise ValueError(f"unknown transform kind {kind!r}; expected one of {KINDS}")
    return f"{kind}-{int(image_size)}-{'norm' if normalize else 'nonorm'}"


def _tail(normalize: bool) -> list:
    steps: list = [T.ToTensor()]
    if normalize:
        steps.append(T.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    return steps


def eval_transform(image_size: int = 224, normalize: bool = True) -> NamedCompose:
    """Linear / finetune evaluation: bicubic short-side resize, centre crop, tensor, normalise."""
    steps = [
        T.Resize(image_size, interpolation=InterpolationMode.BICUBIC),
        T.CenterCrop(image_size),
        *_tail(normalize),
    ]
    return NamedCompose(steps, transform_id("eval", image_size, normalize))


def train_transform(image_size: int = 224, normalize: bool = True) -> NamedCompose:
    """Finetune augmentation: bicubic RandomResizedCrop, horizontal flip, tensor, normalise."""
    steps = [
        T.RandomResizedCrop(image_size, interpolation=InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(),
        *_tail(normalize),
    ]
    return NamedCompose(steps, transform_id("train", image_size, normalize))


def few_shot_transform(image_size: int = 224, normalize: bool = True) -> NamedCompose:
    """Few-shot: square bilinear resize to int(1.15 * size) (aspect not kept), centre crop."""
    resized = int(image_size * FEW_SHOT_RESIZE_FACTOR)
    steps = [
        T.Resize((resized, resized), interpolation=InterpolationMode.BILINEAR),
        T.CenterCrop(image_size),
        *_tail(normalize),
    ]
    return NamedCompose(steps, transform_id("fewshot", image_size, normalize))


def build_transform(kind: str, image_size: int = 224, normalize: bool = True) -> NamedCompose:
    """The transform of ``kind`` ("eval", "train" or "fewshot")."""
    transform_id(kind, image_size, normalize)  # validates kind
    builder = {"eval": eval_transform, "train": train_transform, "fewshot": few_shot_transform}
    return builder[kind](image_size, normalize)
