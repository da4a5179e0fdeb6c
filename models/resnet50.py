"""The paper's backbone: a torchvision ResNet-50 trunk returning the 2048-d globally pooled layer4
feature, loaded strictly from a common-format file (a torchvision state dict without ``fc.*``), or
seeded at random as the lower bound that needs no download."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from models.backbone import RANDOM_SEED, Backbone
from models.errors import ModelError
from models.registry import MODELS, ModelSpec
from models.resolve import RANDOM, ModelRef
from models.weights import file_sha256, load_state_dict_file, state_dict_mismatch


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


def check_common_format(state_dict: dict, source: str) -> None:
    """Raise with the exact keys that differ from a torchvision ResNet-50 without ``fc``."""
    problems = state_dict_mismatch(state_dict, trunk_shapes())
    if problems:
        raise ModelError(
            "\n  ".join([f"{source} is not a ResNet-50 in the common format", *problems])
        )


def how_to_make_checkpoint(name: str, path: Path) -> str:
    """What to do when the common-format file ``path`` of model ``name`` is missing."""
    spec: ModelSpec | None = MODELS.get(name)
    if spec is None:
        return (
            f"{name!r} is not a registered model ({', '.join(MODELS)}); to evaluate your own "
            f"ResNet-50, save its torchvision state dict without fc.* as {path}; any other "
            "architecture: timm:<name> (docs/models.md)"
        )
    how = f"create it with: python download_and_prepare_models.py --models {name}"
    if spec.manual_steps:
        how += f" --from FILE\n{spec.manual_steps}"
    return how


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


def load_resnet50_file(ref: ModelRef, no_norm: bool) -> Backbone:
    """The common-format file of ``ref``, loaded strictly; a registered model takes its
    normalisation from the registry, any other file ImageNet's unless ``no_norm``."""
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

