"""The ResNet-50 trunk every protocol evaluates: build it, load a common-format file strictly, and
return the 2048-d globally pooled layer4 feature."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import torch
import torchvision
from torch import nn

from models.registry import MODELS, ModelError, ModelSpec, default_models_dir

FEATURE_DIM = 2048
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


class Backbone(nn.Module):
    """A trunk plus what the protocols need to know about it."""

    def __init__(self, trunk: nn.Module, name: str, normalize: bool, identity: str) -> None:
        super().__init__()
        self.trunk = trunk
        self.name = name
        self.normalize = normalize  # whether inputs get ImageNet mean/std normalisation
        self.identity = identity  # content identity of the weights, for the feature cache

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(images)


def checkpoint_path(name: str, models_dir: str | Path | None = None) -> Path:
    """Where the common-format file of ``name`` lives (a path to a .pth file is taken as is)."""
    if name.endswith(".pth") and Path(name).exists():
        return Path(name)
    return Path(models_dir or default_models_dir()) / f"{name}.pth"


def how_to_make_checkpoint(name: str, path: Path) -> str:
    """What to do when the common-format file ``path`` of model ``name`` is missing."""
    spec: ModelSpec | None = MODELS.get(name)
    if spec is None:
        return (
            f"{name!r} is not a registered model ({', '.join(MODELS)}); to evaluate your own "
            f"ResNet-50, save its torchvision state dict without fc.* as {path}"
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


def check_common_format(state_dict: dict, source: str) -> None:
    """Raise with the exact keys that differ from a torchvision ResNet-50 without ``fc``."""
    shapes = trunk_shapes()
    missing = sorted(set(shapes) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(shapes))
    wrong_shape = sorted(
        f"{key}: {tuple(state_dict[key].shape)} (expected {shapes[key]})"
        for key in set(shapes) & set(state_dict)
        if tuple(state_dict[key].shape) != shapes[key]
    )
    if missing or unexpected or wrong_shape:
        parts = [f"{source} is not a ResNet-50 in the common format"]
        for title, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong_shape),
        ):
            if keys:
                shown = ", ".join(keys[:20]) + (
                    f", ... ({len(keys)} in all)" if len(keys) > 20 else ""
                )
                parts.append(f"{title} keys: {shown}")
        raise ModelError("\n  ".join(parts))


def load_state_dict_file(path: str | Path, allowed_globals: tuple = ()) -> dict:
    """``torch.load`` with ``weights_only=True`` (plus ``allowed_globals``, harmless classes some
    trainers save beside the weights), turning torch's errors into one clear message."""
    try:
        with torch.serialization.safe_globals(list(allowed_globals)):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a truncated or foreign file
        text = str(error).strip()
        raise ModelError(
            f"could not read {path} as a PyTorch checkpoint ({type(error).__name__}: "
            f"{text.splitlines()[0] if text else ''}); is the file complete? If it was "
            f"downloaded, delete it and run the command again"
        ) from None
    if not isinstance(obj, dict):
        raise ModelError(f"{path} holds a {type(obj).__name__}, not a dict of weights")
    return obj


def random_backbone() -> Backbone:
    """Seeded random initialisation: the lower bound that needs no download."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(RANDOM_SEED)
    trunk = build_trunk()
    torch.random.set_rng_state(generator_state)
    identity = f"random-seed{RANDOM_SEED}-torchvision{torchvision.__version__}"
    return Backbone(trunk.eval(), "random", normalize=True, identity=identity)


def load_backbone(
    name: str, models_dir: str | Path | None = None, no_norm: bool = False
) -> Backbone:
    """Load ``models/<name>.pth`` strictly into a ResNet-50 trunk in eval mode.

    Registered models take their normalisation from the registry; any other file in the common
    format is a custom model with ImageNet normalisation unless ``no_norm``.
    """
    spec: ModelSpec | None = MODELS.get(name)
    if name == "random":
        backbone = random_backbone()
        backbone.normalize = not no_norm
        return backbone
    path = checkpoint_path(name, models_dir)
    if not path.exists():
        raise ModelError(f"no checkpoint at {path}; {how_to_make_checkpoint(name, path)}")
    state_dict = load_state_dict_file(path)
    check_common_format(state_dict, str(path))
    trunk = build_trunk()
    trunk.load_state_dict(state_dict, strict=True)
    normalize = (spec.normalize if spec is not None else True) and not no_norm
    label = spec.name if spec is not None else path.stem
    return Backbone(trunk.eval(), label, normalize=normalize, identity=file_sha256(path))
