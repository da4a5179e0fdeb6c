"""Common-format ResNet-50 state dict -> detectron2 checkpoint pickle.

detectron2's checkpointer matches a pickle marked ``matching_heuristics`` to its model by key
suffix (``res2.0.conv1.weight`` fills ``backbone.bottom_up.res2.0.conv1.weight``), so the only
work is renaming torchvision's keys into detectron2's ResNet names.

The 53 ``num_batches_tracked`` counters are left out (265 of the 318 tensors are written):
detectron2's ``FrozenBN``, the norm of every config, has no such buffer, so its loader would list
all 53 as unused on every load and bury a real warning. detectron2's own
``convert-torchvision-to-d2.py`` keeps them; they carry no weights (a ``BN``/``SyncBN`` norm reads
the counter only when its momentum is None; detectron2 builds them with the default 0.1).
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from models.errors import ModelError
from models.haiku_pickle import _BUILTINS_ALLOWED, _NUMPY_ALLOWED, _RestrictedUnpickler
from models.registry import MODELS
from models.resnet50 import check_common_format
from models.resolve import RANDOM, ModelRef, resolve_model
from models.weights import load_state_dict_file
from transfer.atomic import atomic_path

_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
#: The keys a torchvision ResNet-50 trunk can hold; anything else has no renaming rule.
_TORCHVISION_KEY = re.compile(
    rf"^(conv1\.weight|bn1\.{_BN}"
    rf"|layer[1-4]\.\d+\.(conv[1-3]\.weight|bn[1-3]\.{_BN}"
    rf"|downsample\.0\.weight|downsample\.1\.{_BN}))$"
)


class Detectron2ConversionError(ModelError):
    """A checkpoint that is not a common-format ResNet-50 state dict."""


def detection_models() -> dict[str, bool]:
    """Model name -> whether it takes ImageNet normalisation, for every model with configs.

    ``random`` has no pretrained weights to transfer, and the configs build a ResNet-50, so
    neither ``random`` nor a timm architecture of the zoo (EfficientNet-Lite) has configs.
    """
    return {name: spec.normalize for name, spec in MODELS.items()
            if name != "random" and spec.timm is None}


def detectron2_key(key: str) -> str:
    """Rename one torchvision ResNet-50 key into detectron2's naming (stem, resN, convN.norm,
    shortcut), in the order of detectron2's ``convert-torchvision-to-d2.py``."""
    if not _TORCHVISION_KEY.match(key):
        raise Detectron2ConversionError(
            f"key {key!r} is not a torchvision ResNet-50 trunk key (conv1, bn1, layer1..4 without"
            " fc.*), so no detectron2 renaming rule applies"
        )
    if "layer" not in key:
        key = "stem." + key
    for stage in (1, 2, 3, 4):
        key = key.replace(f"layer{stage}", f"res{stage + 1}")
    for idx in (1, 2, 3):
        key = key.replace(f"bn{idx}", f"conv{idx}.norm")
    key = key.replace("downsample.0", "shortcut")
    return key.replace("downsample.1", "shortcut.norm")


def to_detectron2(
    state_dict: Mapping[str, torch.Tensor], source: str = "state dict"
) -> dict[str, np.ndarray]:
    """Rename every key and turn every tensor into a numpy array (values untouched), leaving out
    the ``num_batches_tracked`` counters (see the module docstring).

    The input must be exactly the common format (torchvision's 318 trunk tensors, no ``fc.*``): a
    missing tensor would be silently random-initialised by detectron2, so it is an error here, as
    is any extra key.
    """
    check_common_format(dict(state_dict), source)
    return {
        detectron2_key(key): value.detach().cpu().numpy()
        for key, value in state_dict.items()
        if not key.endswith(".num_batches_tracked")
    }


def detectron2_checkpoint(
    state_dict: Mapping[str, torch.Tensor], source: str = "state dict"
) -> dict:
    """The pickle payload detectron2's DetectionCheckpointer reads with name matching."""
    return {
        "model": to_detectron2(state_dict, source),
        "__author__": "torchvision",
        "matching_heuristics": True,
    }


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Read a common-format ``.pth`` and write its detectron2 ``.pkl``; nothing is left on error."""
    payload = detectron2_checkpoint(load_state_dict_file(src), str(src))
    with atomic_path(dst) as tmp, open(tmp, "wb") as f:
        pickle.dump(payload, f)
    return Path(dst)


class _ArraysOnlyUnpickler(_RestrictedUnpickler):
    """numpy arrays and plain containers, what :func:`convert_checkpoint` writes; reuses the BYOL
    reader's allow-lists so that reading a pickle to check it can run no code from the file."""

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_ALLOWED | _BUILTINS_ALLOWED:
            return super().find_class(module, name)
        raise Detectron2ConversionError(
            f"it names {module}.{name}, which a converted checkpoint does not contain"
        )


def read_detectron2_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The renamed arrays (``payload["model"]``) of a pickle written by :func:`convert_checkpoint`.

    A missing or unreadable file is a one-line error naming the command that remakes it.
    """
    path = Path(path)
    remake = f"python convert_to_detectron2.py --models {path.stem}"
    if not path.is_file():
        raise Detectron2ConversionError(f"{path} not found: make it with {remake}")
    try:
        with open(path, "rb") as f:
            payload = _ArraysOnlyUnpickler(f).load()
    except Exception as error:  # any unpickling failure: truncated, not a pickle, foreign class
        raise Detectron2ConversionError(
            f"{path} is not a converted detectron2 checkpoint ({type(error).__name__}: {error});"
            f" remake it with {remake}"
        ) from error
    model = payload.get("model") if isinstance(payload, dict) else None
    if not isinstance(model, dict) or not all(isinstance(v, np.ndarray) for v in model.values()):
        raise Detectron2ConversionError(
            f"{path} is not a converted detectron2 checkpoint (no 'model' dict of arrays);"
            f" remake it with {remake}"
        )
    return model


def detection_refs(names: list[str], models_dir: Path) -> list[ModelRef]:
    """The common-format files ``names`` stand for: registered names, custom names or ``.pth``
    paths; a timm model or ``random`` (no pretrained weights) is refused in one line."""
    refs = [resolve_model(name, models_dir) for name in names]
    for ref in refs:
        ref.require_resnet50("detection")
        if ref.kind == RANDOM:
            raise ModelError("'random' has no pretrained weights to convert for detection")
    return refs
