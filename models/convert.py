"""One small converter per source format, each ending in the common state dict: a torchvision
ResNet-50 ``state_dict`` without ``fc.*`` (318 tensors, 265 without ``num_batches_tracked``)."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.efficientnet_lite import convert_package_file
from models.errors import ModelError
from models.haiku_pickle import load_byol_pickle
from models.registry import (
    BYOL_HAIKU,
    PYPI_PACKAGE,
    SIMCLR_V2_CONVERTED,
    TORCH,
    TORCHVISION,
    ModelSpec,
)
from models.resnet50 import build_trunk, check_common_format, trunk_shapes
from models.weights import load_state_dict_file

WRAPPER_KEYS = ("state_dict", "model", "resnet")
SIMCLR_V2_KEY_MAP = Path(__file__).with_name("simclr_v2_tf_keys.json")
# Haiku modules of BYOL that are not the ResNet trunk.
BYOL_HEADS = ("projector", "predictor", "classifier")


@dataclass
class ConversionReport:
    """What a conversion kept and dropped, printed for the user."""

    dropped: list[str] = field(default_factory=list)
    matched: int = 0  # trunk tensors found in the source
    filled: int = 0  # num_batches_tracked counters absent from the source, set to 0

    def summary(self) -> str:
        lines = [
            f"matched {self.matched} of {len(trunk_shapes())} trunk tensors"
            + (
                f" ({self.filled} num_batches_tracked counters absent, set to 0)"
                if self.filled
                else ""
            )
        ]
        if self.dropped:
            groups = Counter(".".join(key.split(".")[:2]) for key in self.dropped)
            shown = ", ".join(f"{name}.* ({count})" for name, count in sorted(groups.items()))
            lines.append(f"dropped {len(self.dropped)} non-trunk tensors: {shown}")
        return "\n".join(lines)


def unwrap(checkpoint: Mapping) -> Mapping:
    """Descend through ``state_dict`` / ``model`` / ``resnet`` wrappers to the tensors."""
    for _ in range(3):
        inner = next(
            (checkpoint[key] for key in WRAPPER_KEYS if isinstance(checkpoint.get(key), Mapping)),
            None,
        )
        if inner is None:
            break
        checkpoint = inner
    tensors = {key: value for key, value in checkpoint.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise ModelError(
            f"no tensors found; top-level keys are {sorted(checkpoint)[:20]} "
            f"(weights are expected at the top level or under one of {WRAPPER_KEYS})"
        )
    return tensors


def finish(
    state_dict: dict[str, torch.Tensor], report: ConversionReport, source: str
) -> dict[str, torch.Tensor]:
    """Check against the trunk's keys and shapes, fill absent BN counters, fix dtypes and order."""
    shapes = trunk_shapes()
    report.matched = sum(key in state_dict for key in shapes)
    for key in shapes:
        if key.endswith("num_batches_tracked") and key not in state_dict:
            state_dict[key] = torch.tensor(0, dtype=torch.long)
            report.filled += 1
    check_common_format(state_dict, source)
    return {
        key: (
            state_dict[key].to(torch.long)
            if key.endswith("num_batches_tracked")
            else state_dict[key].to(torch.float32)
        ).contiguous()
        for key in shapes
    }


def convert_torch(checkpoint: Mapping, spec: ModelSpec, source: str):
    """Wrapper keys, then the prefix (keys outside it, e.g. MoCo's key encoder, are dropped),
    then head tensors named in the registry."""
    tensors = unwrap(checkpoint)
    report = ConversionReport()
    prefix = spec.prefix
    if prefix and not any(key.startswith(prefix) for key in tensors):
        prefix = ""  # already stripped, e.g. a file saved from the bare encoder
    state_dict = {}
    for key, value in tensors.items():
        if prefix and not key.startswith(prefix):
            report.dropped.append(key)
            continue
        name = key[len(prefix) :]
        if name.split(".")[0] in spec.drop:
            report.dropped.append(name)
            continue
        state_dict[name] = value
    return finish(state_dict, report, source), report


def convert_torchvision(checkpoint: Mapping, spec: ModelSpec, source: str):
    """torchvision's ImageNet weights: a plain state dict with ``fc``."""
    return convert_torch(checkpoint, spec, source)


def convert_simclr_v2(checkpoint: Mapping, spec: ModelSpec, source: str):
    """The SimCLR-v2 TF->torch converter names modules ``net.<i>...``; a fixed table maps them."""
    key_map: dict[str, str] = json.loads(SIMCLR_V2_KEY_MAP.read_text())
    tensors = unwrap(checkpoint)
    missing = [theirs for theirs in key_map.values() if theirs not in tensors]
    if missing:
        raise ModelError(
            f"{source} is not a converted SimCLR-v2 checkpoint: {len(missing)} expected keys are "
            f"missing, e.g. {', '.join(missing[:10])}"
        )
    used = set(key_map.values())
    report = ConversionReport(
        dropped=[key for key in tensors if key not in used and "num_batches_tracked" not in key]
    )
    state_dict = {ours: tensors[theirs] for ours, theirs in key_map.items()}
    return finish(state_dict, report, source), report


def _byol_trunk_entries(mapping: Mapping, kind: str) -> list:
    """Entries of the ResNet trunk whose module name contains ``kind``, in the file's order,
    with the stem (listed last in Haiku's order) moved to the front to follow torchvision's."""
    keys = [key for key in mapping if kind in key and not key.startswith(BYOL_HEADS)]
    stem = [key for key in keys if "initial" in key]
    if not stem:  # no explicit stem name: Haiku lists it last
        stem = keys[-2:] if kind.endswith("_ema") else keys[-1:]
    return [mapping[key] for key in stem + [key for key in keys if key not in stem]]


def convert_byol(params: Mapping, stats: Mapping, source: str):
    """Haiku conv kernels are HWIO (torch: OIHW); BN scale/offset are the affine parameters and
    the EMA of mean/var the running statistics."""
    convs = _byol_trunk_entries(params, "conv")
    norms = _byol_trunk_entries(params, "batchnorm")
    means = _byol_trunk_entries(stats, "mean_ema")
    variances = _byol_trunk_entries(stats, "var_ema")
    if not means:  # state keyed per batchnorm with both EMAs under it
        pairs = _byol_trunk_entries(stats, "batchnorm")
        means, variances = pairs[0::2], pairs[1::2]
    trunk = build_trunk()
    conv_names = [name for name, m in trunk.named_modules() if isinstance(m, torch.nn.Conv2d)]
    bn_names = [name for name, m in trunk.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    counts = (len(convs), len(norms), len(means), len(variances))
    if counts != (len(conv_names), len(bn_names), len(bn_names), len(bn_names)):
        raise ModelError(
            f"{source}: expected {len(conv_names)} conv and {len(bn_names)} batchnorm modules "
            f"(with mean/var EMAs) in the ResNet trunk, found {counts[0]} conv, {counts[1]} "
            f"batchnorm, {counts[2]} mean and {counts[3]} var EMAs"
        )
    shapes = trunk_shapes()
    state_dict: dict[str, torch.Tensor] = {}

    def put(key: str, array, permute: tuple[int, ...] | None = None) -> None:
        try:
            tensor = torch.from_numpy(np.asarray(array, dtype=np.float32).copy())
        except (TypeError, ValueError) as error:
            raise ModelError(
                f"{source}: {key} is a {type(array).__name__}, not an array; was the "
                "checkpoint saved without jax.device_get?"
            ) from error
        tensor = tensor.permute(*permute) if permute else tensor.reshape(-1)
        if tuple(tensor.shape) != shapes[key]:
            raise ModelError(
                f"{source}: {key} would get shape {tuple(tensor.shape)}, "
                f"expected {shapes[key]}: the Haiku layer order is not ResNet-50's"
            )
        state_dict[key] = tensor

    for name, conv in zip(conv_names, convs, strict=True):
        put(f"{name}.weight", conv["w"], permute=(3, 2, 0, 1))
    for name, norm, mean, var in zip(bn_names, norms, means, variances, strict=True):
        put(f"{name}.weight", norm["scale"])
        put(f"{name}.bias", norm["offset"])
        put(f"{name}.running_mean", mean["average"])
        put(f"{name}.running_var", var["average"])
    report = ConversionReport(dropped=[key for key in params if key.startswith(BYOL_HEADS)])
    return finish(state_dict, report, source), report


def read_torch_checkpoint(path: str | Path) -> Mapping:
    """The source checkpoint; argparse namespaces some trainers save beside the weights are
    allowed, nothing else that is not a tensor or a plain container."""
    return load_state_dict_file(path, allowed_globals=(argparse.Namespace,))


def convert_file(spec: ModelSpec, path: str | Path):
    """Convert the source file of ``spec`` to the common format: ``(state_dict, report)``; a
    timm architecture's file to that architecture's key names."""
    source = str(path)
    if spec.source_format == PYPI_PACKAGE:
        return convert_package_file(spec, path)
    if spec.source_format == BYOL_HAIKU:
        params, stats = load_byol_pickle(path)
        return convert_byol(params, stats, source)
    converters = {
        TORCH: convert_torch,
        TORCHVISION: convert_torchvision,
        SIMCLR_V2_CONVERTED: convert_simclr_v2,
    }
    if spec.source_format not in converters:
        raise ModelError(f"{spec.name} has no file to convert (format {spec.source_format})")
    return converters[spec.source_format](read_torch_checkpoint(path), spec, source)
