"""Key renaming torchvision ResNet-50 -> detectron2, against expectations written independently."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.detectron2 import (
    Detectron2ConversionError,
    detectron2_checkpoint,
    detectron2_key,
    to_detectron2,
)
from models.errors import ModelError
from tests.fixtures.checkpoints import common_state_dict

BN_PARAMS = ("weight", "bias", "running_mean", "running_var")  # FrozenBN's: no counter


def expected_detectron2_name(key: str) -> str:
    """The detectron2 name of a torchvision key, from the meaning of each part (not string edits).

    torchvision stem conv1/bn1 -> detectron2 stem.conv1 and its .norm; layerS -> res(S+1);
    in a block convN keeps its name, bnN is convN's .norm; downsample.0/.1 are the shortcut
    conv and its .norm.
    """
    parts = key.split(".")
    if parts[0] == "conv1":
        return "stem.conv1.weight"
    if parts[0] == "bn1":
        return f"stem.conv1.norm.{parts[1]}"
    stage, block, module = int(parts[0][len("layer") :]), parts[1], parts[2]
    prefix = f"res{stage + 1}.{block}"
    if module.startswith("conv"):
        return f"{prefix}.{module}.weight"
    if module.startswith("bn"):
        return f"{prefix}.conv{module[2:]}.norm.{parts[3]}"
    assert module == "downsample"
    return f"{prefix}.shortcut.weight" if parts[3] == "0" else f"{prefix}.shortcut.norm.{parts[4]}"


def detectron2_resnet50_names() -> set[str]:
    """Every backbone tensor name of detectron2's ResNet-50 (3, 4, 6, 3 bottleneck blocks)."""
    names = {"stem.conv1.weight", *(f"stem.conv1.norm.{p}" for p in BN_PARAMS)}
    for stage, blocks in zip(("res2", "res3", "res4", "res5"), (3, 4, 6, 3), strict=True):
        for block in range(blocks):
            convs = ["conv1", "conv2", "conv3"] + (["shortcut"] if block == 0 else [])
            for conv in convs:
                names.add(f"{stage}.{block}.{conv}.weight")
                names.update(f"{stage}.{block}.{conv}.norm.{p}" for p in BN_PARAMS)
    return names


@pytest.fixture(scope="module")
def state_dict() -> dict[str, torch.Tensor]:
    return common_state_dict(seed=3)


@pytest.mark.parametrize(
    ("torchvision_key", "detectron2_name"),
    [
        ("conv1.weight", "stem.conv1.weight"),
        ("bn1.weight", "stem.conv1.norm.weight"),
        ("bn1.num_batches_tracked", "stem.conv1.norm.num_batches_tracked"),
        ("layer1.0.conv1.weight", "res2.0.conv1.weight"),
        ("layer1.2.bn3.running_var", "res2.2.conv3.norm.running_var"),
        ("layer2.0.downsample.0.weight", "res3.0.shortcut.weight"),
        ("layer2.0.downsample.1.bias", "res3.0.shortcut.norm.bias"),
        ("layer3.5.bn2.running_mean", "res4.5.conv2.norm.running_mean"),
        ("layer4.2.conv3.weight", "res5.2.conv3.weight"),
        ("layer4.0.downsample.1.num_batches_tracked", "res5.0.shortcut.norm.num_batches_tracked"),
    ],
)
def test_known_names(torchvision_key: str, detectron2_name: str) -> None:
    assert detectron2_key(torchvision_key) == detectron2_name


def test_every_resnet50_key_gets_its_detectron2_name(state_dict: dict) -> None:
    assert len(state_dict) == 318
    for key in state_dict:
        assert detectron2_key(key) == expected_detectron2_name(key), key
    counters = {key for key in state_dict if key.endswith("num_batches_tracked")}
    assert len(counters) == 53  # one per BN: 1 stem + 16 blocks x 3 + 4 shortcuts
    renamed = {detectron2_key(key) for key in state_dict if key not in counters}
    assert renamed == detectron2_resnet50_names()


def test_values_shapes_and_dtypes_unchanged(state_dict: dict) -> None:
    converted = to_detectron2(state_dict)
    kept = {k: v for k, v in state_dict.items() if not k.endswith(".num_batches_tracked")}
    assert len(converted) == len(kept) == 265
    assert set(converted) == {expected_detectron2_name(key) for key in kept}
    for key, tensor in kept.items():
        array = converted[expected_detectron2_name(key)]
        assert isinstance(array, np.ndarray)
        assert array.dtype == tensor.numpy().dtype
        np.testing.assert_array_equal(array, tensor.numpy())


def test_batch_counters_are_left_out(state_dict: dict) -> None:
    """detectron2's FrozenBN has no num_batches_tracked: a converted counter is an unused key on
    every load."""
    converted = to_detectron2(state_dict)
    assert not [key for key in converted if "num_batches_tracked" in key]


def test_checkpoint_payload_marks_torchvision_heuristics(state_dict: dict) -> None:
    payload = detectron2_checkpoint(state_dict)
    assert set(payload) == {"model", "__author__", "matching_heuristics"}
    assert payload["__author__"] == "torchvision"
    assert payload["matching_heuristics"] is True


@pytest.mark.parametrize(
    "key", ["fc.weight", "layer1.0.relu.weight", "layer5.0.conv1.weight", "module.conv1.weight",
            "layer1.0.downsample.2.weight", "bn1.scale"],
)  # fmt: skip
def test_key_without_rule_fails_naming_it(key: str) -> None:
    with pytest.raises(Detectron2ConversionError, match=key.replace(".", r"\.")):
        detectron2_key(key)


def test_extra_key_in_state_dict_fails_naming_it(state_dict: dict) -> None:
    with_fc = {**state_dict, "fc.weight": torch.zeros(1000, 2048)}
    with pytest.raises(ModelError, match=r"unexpected keys: fc\.weight"):
        to_detectron2(with_fc)


def test_missing_key_fails_naming_it(state_dict: dict) -> None:
    partial = {k: v for k, v in state_dict.items() if k != "layer3.4.bn2.running_var"}
    with pytest.raises(ModelError, match=r"missing keys: layer3\.4\.bn2\.running_var"):
        to_detectron2(partial)
