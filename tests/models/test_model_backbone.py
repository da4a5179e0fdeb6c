from __future__ import annotations

import pytest
import torch
import torchvision

from models.errors import ModelError
from models.loader import load_backbone
from models.registry import MODELS, PAPER_MODELS
from tests.fixtures.checkpoints import reference_state_dict, trunk_only


def test_registry_has_the_papers_14_models_and_random():
    extra = {"efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"}  # not the paper's
    assert len(PAPER_MODELS) == 14 and set(MODELS) == set(PAPER_MODELS) | {"random"} | extra
    assert [name for name in PAPER_MODELS if not MODELS[name].normalize] == [
        "simclr-v1",
        "simclr-v2",
    ]
    top1 = [MODELS[name].imagenet_top1 for name in PAPER_MODELS]
    assert top1 == sorted(top1)  # the paper orders its models by ImageNet top-1


def test_random_is_seeded_and_needs_no_file(tmp_path):
    a, b = load_backbone("random", tmp_path), load_backbone("random", tmp_path)
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert a.identity == b.identity and a.normalize
    assert not load_backbone("random", no_norm=True).normalize


def test_missing_checkpoint_names_the_command(tmp_path):
    with pytest.raises(ModelError, match="python download_and_prepare_models.py --models byol"):
        load_backbone("byol", tmp_path)
    with pytest.raises(ModelError, match="--from FILE"):
        load_backbone("simclr-v2", tmp_path)
    with pytest.raises(ModelError, match="save its torchvision state dict without fc"):
        load_backbone("my-resnet", tmp_path)


def test_custom_model_loads_strictly_with_imagenet_normalisation(tmp_path):
    state = trunk_only(reference_state_dict(seed=3))
    torch.save(state, tmp_path / "my-resnet.pth")
    backbone = load_backbone("my-resnet", tmp_path)
    assert backbone.normalize and backbone.name == "my-resnet"
    assert not load_backbone("my-resnet", tmp_path, no_norm=True).normalize
    reference = torchvision.models.resnet50(weights=None)
    reference.fc = torch.nn.Identity()
    reference.load_state_dict(state)
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(backbone(x), reference.eval()(x), atol=1e-5)


def test_registered_simclr_file_is_not_normalised(tmp_path):
    torch.save(trunk_only(reference_state_dict(seed=3)), tmp_path / "simclr-v1.pth")
    assert not load_backbone("simclr-v1", tmp_path).normalize


def test_common_format_with_wrong_keys_lists_them(tmp_path):
    state = reference_state_dict(seed=3)  # still has fc
    state.pop("layer1.0.bn1.running_mean")
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ModelError) as error:
        load_backbone("bad", tmp_path)
    assert "missing keys: layer1.0.bn1.running_mean" in str(error.value)
    assert "unexpected keys: fc.bias, fc.weight" in str(error.value)


def test_identity_is_the_files_sha256(tmp_path):
    import hashlib

    torch.save(trunk_only(reference_state_dict(seed=3)), tmp_path / "m.pth")
    digest = hashlib.sha256((tmp_path / "m.pth").read_bytes()).hexdigest()
    assert load_backbone("m", tmp_path).identity == digest


def test_paper_models_keep_their_cache_identity_transform_ids_and_paths(tmp_path):
    """Pinned as they were before timm models came: the feature cache of the paper's models and
    of custom ResNet-50 files must not move."""
    import hashlib

    from datasets import build_transform, load_split
    from transfer.features.cache import FeatureCache

    backbone = load_backbone("random")
    assert backbone.identity == f"random-seed0-torchvision{torchvision.__version__}"
    assert backbone.feature_dim == 2048 and backbone.name == "random"
    ids = {kind: backbone.transform(kind, 224).transform_id for kind in ("eval", "train",
                                                                          "fewshot")}
    assert ids == {"eval": "eval-224-norm", "train": "train-224-norm",
                   "fewshot": "fewshot-224-norm"}
    assert load_backbone("random", no_norm=True).transform("eval", 64).transform_id == (
        "eval-64-nonorm")
    assert build_transform("eval", 224, True).transform_id == "eval-224-norm"
    split = load_split("digits", "trainval")
    assert FeatureCache.key("abc", split.identity, "eval-224-norm", "fp32") == (
        "8fcbaf7eae371ef09248")
    text = "\n".join((backbone.identity, split.identity, "eval-64-norm", "fp32"))
    key = hashlib.sha256(text.encode()).hexdigest()[:20]
    assert FeatureCache(tmp_path).path("random", split, backbone.identity, "eval-64-norm",
                                       "fp32") == (
        tmp_path / "random" / "digits" / f"trainval-eval-64-norm-fp32-{key}.pt")
    torch.save(trunk_only(reference_state_dict(seed=3)), tmp_path / "simclr-v1.pth")
    simclr = load_backbone("simclr-v1", tmp_path)
    assert simclr.transform("eval", 224).transform_id == "eval-224-nonorm"
    digest = hashlib.sha256((tmp_path / "simclr-v1.pth").read_bytes()).hexdigest()
    assert simclr.identity == digest
    # a path to a registered model's file keeps the registry's knowledge, as the dense tasks did
    assert load_backbone(str(tmp_path / "simclr-v1.pth")).transform("eval", 224).transform_id == (
        "eval-224-nonorm")
