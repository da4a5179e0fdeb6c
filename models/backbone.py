"""What every protocol sees of a model: a ``Backbone`` (a trunk returning pooled features, its
feature width, how it wants its images and a content identity for the cache), and the
``BackboneOptions`` that say how a timm model is built and read.

Types only: building and loading live in ``resnet50``, ``timm_backbone`` and ``loader``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from datasets.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NamedCompose,
    build_transform,
    timm_eval_transform,
)
from models.errors import ModelError

POOLS = ("default", "avg", "cls+avg")


PREPROCESSES = ("paper", "model")


@dataclass(frozen=True)
class BackboneOptions:
    """How a timm model is built and read (the ``--weights/--pool/--layers/--preprocess/
    --random-init`` flags); the defaults are the only values a ResNet-50 file accepts."""

    weights: str | None = None  # a state dict file (.pth/.pt/.bin/.safetensors)
    pool: str = "default"  # default: timm's pre-logits feature; avg; cls+avg
    layers: int = 1  # concatenate the feature of the last N blocks
    preprocess: str = "paper"  # paper: the paper's transforms; model: timm's eval transform
    random_init: bool = False  # seeded random initialisation instead of pretrained weights

    def changed(self) -> list[str]:
        """The command-line flags whose values differ from the defaults."""
        default = BackboneOptions()
        return [
            "--" + f.name.replace("_", "-")
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        ]



FEATURE_DIM = 2048  # the ResNet-50 trunk's pooled feature


RANDOM_SEED = 0


@dataclass(frozen=True)
class DataConfig:
    """How a backbone wants its images (timm's pretrained config, reduced to what the paper's
    transforms take from a model: normalisation and input size).

    ``input_size`` None means the dataset's default size (the paper's ResNet-50s); a timm model
    has its native size, and ``size_multiple`` (a ViT's patch size) or ``fixed_input_size``
    restrict what ``-i`` may ask. ``preprocess`` "model" swaps the paper's evaluation transforms
    for timm's (``crop_pct``, ``interpolation``, ``crop_mode``).
    """

    mean: tuple[float, float, float] | None = IMAGENET_MEAN  # None: inputs stay in [0, 1]
    std: tuple[float, float, float] | None = IMAGENET_STD
    input_size: int | None = None
    fixed_input_size: bool = False
    size_multiple: int = 1
    preprocess: str = "paper"
    crop_pct: float | None = None
    interpolation: str | None = None
    crop_mode: str | None = None

    @property
    def normalize(self) -> bool:
        return self.mean is not None


def imagenet_data_config(normalize: bool) -> DataConfig:
    """The paper's ResNet-50s: ImageNet statistics, or none (SimCLR, ``--no-norm``)."""
    if normalize:
        return DataConfig()
    return DataConfig(mean=None, std=None)


class Backbone(nn.Module):
    """A trunk plus what the protocols need to know about it."""

    def __init__(
        self,
        trunk: nn.Module,
        name: str,
        normalize: bool = True,
        identity: str = "",
        *,
        data: DataConfig | None = None,
        feature_dim: int = FEATURE_DIM,
        description: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.trunk = trunk
        self.name = name  # the label results and cache entries are filed under
        self.identity = identity  # content identity of the weights (and features), for the cache
        self.data = data if data is not None else imagenet_data_config(normalize)
        self.feature_dim = feature_dim  # width of ``self(images)``
        self.description = description or {}

    @property
    def normalize(self) -> bool:
        """Whether inputs are normalised (with ``data.mean``/``data.std``)."""
        return self.data.normalize

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(images)

    def image_size(self, requested: int | None, dataset_default: int) -> int:
        """``-i`` if given, else the model's native size, else the dataset's default; checked
        against what the model can take."""
        size = requested or self.data.input_size or dataset_default
        native = self.data.input_size
        if self.data.fixed_input_size and size != native:
            raise ModelError(
                f"{self.name} takes only {native} px inputs (its position embedding has a fixed "
                f"size); drop -i/--image-size or pass {native}"
            )
        multiple = self.data.size_multiple
        if size % multiple:
            near = sorted({size // multiple * multiple, (size // multiple + 1) * multiple} - {0})
            raise ModelError(
                f"{self.name} needs an input size that is a multiple of its patch size {multiple};"
                f" {size} is not (try {' or '.join(map(str, near))})"
            )
        return size

    def transform(self, kind: str, image_size: int) -> NamedCompose:
        """The transform of ``kind`` ("eval", "train", "fewshot") at ``image_size``: the paper's
        (docs/protocols.md, "Transforms"), normalised with the model's statistics; with
        ``--preprocess model`` the evaluation and few-shot passes use timm's own transform (training
        keeps the paper's augmentation)."""
        d = self.data
        if d.preprocess == "model" and kind != "train":
            return timm_eval_transform(
                image_size, d.crop_pct, d.interpolation, d.crop_mode, d.mean, d.std
            )
        if not d.normalize:
            return build_transform(kind, image_size, False)
        return build_transform(kind, image_size, True, d.mean, d.std)

    def describe(self) -> dict[str, Any]:
        """What a result record says about the backbone."""
        d = self.data
        return {
            "name": self.name,
            **self.description,
            "feature_dim": self.feature_dim,
            "preprocess": d.preprocess,
            "mean": list(d.mean) if d.mean else None,
            "std": list(d.std) if d.std else None,
            "identity": self.identity,
        }

