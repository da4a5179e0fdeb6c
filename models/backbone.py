"""The backbones every protocol evaluates: the paper's ResNet-50 trunk (built, loaded strictly
from a common-format file, returning the 2048-d globally pooled layer4 feature) and, through
``models/timm_backbone.py``, any timm model. A ``Backbone`` says what the protocols need to know:
its feature width, how it wants its images (``DataConfig``) and a content identity for the cache.
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from datasets.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NamedCompose,
    build_transform,
    timm_eval_transform,
)
from models.registry import MODELS, ModelError, ModelSpec
from models.resolve import RANDOM, BackboneOptions, ModelRef, resolve_model

FEATURE_DIM = 2048  # the ResNet-50 trunk's pooled feature
RANDOM_SEED = 0


def build_trunk() -> nn.Module:
    """A torchvision ResNet-50 whose ``fc`` is an identity, so ``trunk(x)`` is the pooled feature
    and its state dict has exactly the common format's keys."""
    trunk = torchvision.models.resnet50(weights=None)
    trunk.fc = nn.Identity()
    return trunk


@functools.lru_cache(maxsize=1)
def trunk_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the common format (318 tensors), built on the meta device (no memory)."""
    with torch.device("meta"):
        trunk = build_trunk()
    return {key: tuple(value.shape) for key, value in trunk.state_dict().items()}


@dataclass(frozen=True)
class DataConfig:
    """How a backbone wants its images (timm's pretrained config, reduced to what SPEC section 3's
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
        """The transform of ``kind`` ("eval", "train", "fewshot") at ``image_size``: SPEC section
        3's, normalised with the model's statistics; with ``--preprocess model`` the evaluation
        and few-shot passes use timm's own transform (training keeps the paper's augmentation)."""
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


def how_to_make_checkpoint(name: str, path: Path) -> str:
    """What to do when the common-format file ``path`` of model ``name`` is missing."""
    spec: ModelSpec | None = MODELS.get(name)
    if spec is None:
        return (
            f"{name!r} is not a registered model ({', '.join(MODELS)}); to evaluate your own "
            f"ResNet-50, save its torchvision state dict without fc.* as {path}; any other "
            "architecture: timm:<name> (README: Evaluate your own backbone)"
        )
    how = f"create it with: python download_and_prepare_models.py --models {name}"
    if spec.manual_steps:
        how += f" --from FILE\n{spec.manual_steps}"
    return how


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def state_dict_mismatch(state_dict: dict, shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """One line per kind of difference between ``state_dict`` and the expected key -> shape:
    missing, unexpected and wrong-shape keys (at most 20 named each); empty when they match."""
    missing = sorted(set(shapes) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(shapes))
    wrong_shape = sorted(
        f"{key}: {tuple(state_dict[key].shape)} (expected {shapes[key]})"
        for key in set(shapes) & set(state_dict)
        if tuple(state_dict[key].shape) != tuple(shapes[key])
    )
    lines = []
    for title, keys in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("wrong shape", wrong_shape),
    ):
        if keys:
            shown = ", ".join(keys[:20]) + (f", ... ({len(keys)} in all)" if len(keys) > 20 else "")
            lines.append(f"{title} keys: {shown}")
    return lines


def check_common_format(state_dict: dict, source: str) -> None:
    """Raise with the exact keys that differ from a torchvision ResNet-50 without ``fc``."""
    problems = state_dict_mismatch(state_dict, trunk_shapes())
    if problems:
        raise ModelError(
            "\n  ".join([f"{source} is not a ResNet-50 in the common format", *problems])
        )


def torch_load_failure(error: Exception) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in one line and without torch's advice
    to retry with ``weights_only=False`` (which runs whatever code the file holds)."""
    text = str(error)
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().split("\n", 1)[0]
        detail = detail.split(". Please use", 1)[0]
        return f"weights-only unpickler: {detail}"
    first = text.strip().split("\n", 1)[0].split(". This is an internal", 1)[0]
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def load_state_dict_file(path: str | Path, allowed_globals: tuple = ()) -> dict:
    """``torch.load`` with ``weights_only=True`` (plus ``allowed_globals``, harmless classes some
    trainers save beside the weights), turning torch's errors into one clear message."""
    try:
        with torch.serialization.safe_globals(list(allowed_globals)), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a truncated or foreign file
        raise ModelError(
            f"could not read {path}: not a PyTorch checkpoint of weights "
            f"({torch_load_failure(error)}); is it the right file, and "
            f"complete? If it was downloaded, delete it and run the command again"
        ) from None
    if not isinstance(obj, dict):
        raise ModelError(f"{path} holds a {type(obj).__name__}, not a dict of weights")
    return obj


def random_backbone(normalize: bool = True) -> Backbone:
    """Seeded random initialisation: the lower bound that needs no download."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(RANDOM_SEED)
    trunk = build_trunk()
    torch.random.set_rng_state(generator_state)
    identity = f"random-seed{RANDOM_SEED}-torchvision{torchvision.__version__}"
    return Backbone(trunk.eval(), RANDOM, normalize, identity,
                    description=_resnet50_description(f"random-init-seed{RANDOM_SEED}", None))


def _resnet50_description(weights: str, sha256: str | None) -> dict[str, Any]:
    return {"architecture": "resnet50 (torchvision)", "weights": weights,
            "weights_sha256": sha256, "pool": "default", "layers": 1}


def load_backbone(
    name: str,
    models_dir: str | Path | None = None,
    no_norm: bool = False,
    options: BackboneOptions | None = None,
) -> Backbone:
    """The backbone ``name`` stands for (see ``models.resolve``), in eval mode.

    A ResNet-50 file is loaded strictly into the torchvision trunk; registered models take their
    normalisation from the registry, any other file ImageNet's unless ``no_norm``. A ``timm:``
    name is built by ``models.timm_backbone`` with ``options``, which other models refuse.
    """
    options = options or BackboneOptions()
    ref = resolve_model(name, models_dir)
    if ref.is_timm:
        from models.timm_backbone import load_timm_backbone

        if no_norm:
            raise ModelError(
                f"--no-norm applies to ResNet-50 files; {name} is normalised with its own "
                "pretrained config's mean and std"
            )
        return load_timm_backbone(ref, options)
    if changed := options.changed():
        raise ModelError(
            f"{', '.join(changed)} apply to timm: models only; {name} is a ResNet-50 "
            "(evaluated as in the paper: pooled layer4 feature, the paper's preprocessing)"
        )
    if ref.kind == RANDOM:
        return random_backbone(normalize=not no_norm)
    return _load_resnet50_file(ref, no_norm)


def _load_resnet50_file(ref: ModelRef, no_norm: bool) -> Backbone:
    path, spec = ref.path, ref.spec
    if not path.exists():
        name = spec.name if spec is not None else ref.text
        raise ModelError(f"no checkpoint at {path}; {how_to_make_checkpoint(name, path)}")
    state_dict = load_state_dict_file(path)
    check_common_format(state_dict, str(path))
    trunk = build_trunk()
    trunk.load_state_dict(state_dict, strict=True)
    normalize = (spec.normalize if spec is not None else True) and not no_norm
    label = spec.name if spec is not None else path.stem
    digest = file_sha256(path)
    return Backbone(trunk.eval(), label, normalize, digest,
                    description=_resnet50_description(str(path), digest))
