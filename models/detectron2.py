"""Common-format ResNet-50 state dict -> detectron2 checkpoint pickle (docs/protocols.md,
"Detection").

detectron2's checkpointer matches a pickle marked ``matching_heuristics`` to its model by key
suffix (``res2.0.conv1.weight`` fills ``backbone.bottom_up.res2.0.conv1.weight``), so the only
work is renaming torchvision's keys into detectron2's ResNet names.

Every key is renamed, ``num_batches_tracked`` included, as detectron2's own
``convert-torchvision-to-d2.py`` and the original script do: with the configs' default
``FrozenBN`` norm the loader logs those buffers as unused and ignores them; with ``BN``/``SyncBN``
norm they load.
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
from models.registry import MODELS
from models.resnet50 import check_common_format
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

    ``random`` has no pretrained weights to transfer, so it has no detection configs.
    """
    return {name: spec.normalize for name, spec in MODELS.items() if name != "random"}


def detectron2_key(key: str) -> str:
    """Rename one torchvision ResNet-50 key into detectron2's naming, by the ordered renaming
    rules."""
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
    """Rename every key and turn every tensor into a numpy array (values untouched).

    The input must be exactly the common format (docs/protocols.md, "Models and the common
    checkpoint format"): a missing tensor would be silently random-initialised by detectron2, so
    it is an error here, as is any extra key.
    """
    check_common_format(dict(state_dict), source)
    return {detectron2_key(key): value.detach().cpu().numpy() for key, value in state_dict.items()}


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
