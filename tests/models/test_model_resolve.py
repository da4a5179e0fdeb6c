"""One resolver for model names: registered, random, custom, a .pth path, or timm:<arch>."""

from __future__ import annotations

from pathlib import Path

import pytest

from models import BackboneOptions, ModelError, model_label, resolve_model
from models.registry import MODELS


def test_every_kind_of_name_resolves(tmp_path):
    byol = resolve_model("byol", tmp_path)
    assert (byol.kind, byol.spec) == ("registered", MODELS["byol"])
    assert byol.path == tmp_path / "byol.pth"
    mine = resolve_model("mine", tmp_path)
    assert (mine.kind, mine.spec, mine.path) == ("custom", None, tmp_path / "mine.pth")
    file = resolve_model(str(tmp_path / "x" / "simclr-v2.pth"))
    assert (file.kind, file.spec, file.path) == ("file", MODELS["simclr-v2"],
                                                 tmp_path / "x" / "simclr-v2.pth")
    assert resolve_model("random").kind == "random"
    timm_ref = resolve_model("timm:resnet18.a1_in1k")
    assert (timm_ref.kind, timm_ref.timm_name, timm_ref.path) == ("timm", "resnet18.a1_in1k", None)
    with pytest.raises(ModelError, match="detection is a ResNet-50 protocol"):
        timm_ref.require_resnet50("detection")
    byol.require_resnet50("detection")


def test_labels_are_file_name_safe_and_name_every_non_default_option():
    assert model_label("byol") == "byol"
    assert model_label("/a/b/my-resnet.pth") == "my-resnet"
    assert model_label("timm:vit_small_patch14_dinov2.lvd142m") == (
        "timm-vit_small_patch14_dinov2.lvd142m")
    options = BackboneOptions(weights="/w/ckpt.safetensors", pool="cls+avg", layers=4,
                              preprocess="model")
    assert model_label("timm:vit_base_patch16_224", options) == (
        "timm-vit_base_patch16_224+weights-ckpt+pool-cls+avg+layers4+preprocess-model")
    assert model_label("timm:resnet50", BackboneOptions(random_init=True)) == (
        "timm-resnet50+random-init")
    assert ":" not in model_label("timm:resnet50") and "/" not in model_label("timm:resnet50")
    assert BackboneOptions(pool="avg", random_init=True).changed() == ["--pool", "--random-init"]


def test_unknown_timm_architecture_is_refused_with_close_names():
    with pytest.raises(ModelError, match="closest: convnext_tiny"):
        resolve_model("timm:convnext_tinyy")
    with pytest.raises(ModelError, match="timm has no architecture ''"):
        resolve_model("timm:")
    assert isinstance(resolve_model("timm:convnext_tiny.fb_in22k").timm_name, str)
    assert Path(resolve_model("byol").path).name == "byol.pth"
