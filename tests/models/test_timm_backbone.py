"""timm backbones: the feature of every --pool and --layers against direct timm computations,
strict loading of every weights format, the hub cache, offline errors, and cache identities."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
import timm
import torch

from datasets import build_transform, load_split
from models import BackboneOptions, ModelError, load_backbone
from tests.fixtures.timm_tiny import (
    CONVNEXT,
    RESNET,
    TINY_ARCHS,
    VIT,
    reference_model,
    save_weights,
    seeded_state_dict,
)
from transfer.features.cache import FeatureCache, cached_features

SIZE = 32
# real architectures, only where no model is built (names, tags, hub addresses)
REAL_VIT, REAL_RESNET = "vit_tiny_patch16_224", "resnet18"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """arch -> (a .safetensors file of its seeded weights, the state dict saved)."""
    folder = tmp_path_factory.mktemp("weights")
    out = {}
    for seed, arch in enumerate(TINY_ARCHS):
        state = seeded_state_dict(arch, seed=seed)
        out[arch] = (save_weights(state, folder / f"{arch}.safetensors"), state)
    return out


def timm_backbone(arch, path, **options):
    return load_backbone(f"timm:{arch}", options=BackboneOptions(weights=str(path), **options))


def _images(n=5):
    split = load_split("digits", "trainval").subset(range(n), "trainval")
    return split, [split.load_image(i) for i in range(n)]


# ----------------------------------------------------------------------------- contract


@pytest.fixture(scope="module")
def random_resnet50():
    return load_backbone("random")


@pytest.mark.parametrize(("name", "options"), [
    ("random", {}),
    (f"timm:{VIT}", {"random_init": True}),
    (f"timm:{VIT}", {"random_init": True, "pool": "cls+avg", "layers": 3}),
    (f"timm:{RESNET}", {"random_init": True}),
    (f"timm:{RESNET}", {"random_init": True, "pool": "avg", "layers": 2}),
    (f"timm:{CONVNEXT}", {"random_init": True}),
    (f"timm:{CONVNEXT}", {"random_init": True, "pool": "avg", "layers": 3}),
])
def test_feature_width_is_what_the_backbone_says(name, options, random_resnet50):
    backbone = (random_resnet50 if name == "random"
                else load_backbone(name, options=BackboneOptions(**options)))
    with torch.inference_mode():
        out = backbone(torch.rand(2, 3, SIZE, SIZE))
    assert out.shape == (2, backbone.feature_dim)


# ----------------------------------------------------------------------------- features


def _vit_blocks(model, x):
    """Every block's output of a timm ViT, by walking its modules (not forward_intermediates)."""
    x = model.norm_pre(model._pos_embed(model.patch_embed(x)))
    outputs = []
    for block in model.blocks:
        x = block(x)
        outputs.append(x)
    return outputs


def _resnet_stages(model, x):
    x = model.maxpool(model.act1(model.bn1(model.conv1(x))))
    outputs = []
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        x = layer(x)
        outputs.append(x)
    return outputs


def expected_features(arch, model, x, pool, layers):
    """The feature as timm computes it directly, written out per case."""
    if layers == 1:
        tokens = model.forward_features(x)
        if pool == "default":
            return model.forward_head(tokens, pre_logits=True)
        if arch == VIT:
            patches = tokens[:, model.num_prefix_tokens:].mean(1)
            return patches if pool == "avg" else torch.cat([tokens[:, 0], patches], 1)
        return tokens.mean((2, 3))
    if arch == VIT:
        normed = [model.norm(t) for t in _vit_blocks(model, x)[-layers:]]
        per_block = {
            "default": lambda t: model.forward_head(t, pre_logits=True),
            "avg": lambda t: t[:, 1:].mean(1),
            "cls+avg": lambda t: torch.cat([t[:, 0], t[:, 1:].mean(1)], 1),
        }[pool]
        return torch.cat([per_block(t) for t in normed], 1)
    if arch == RESNET:
        maps = _resnet_stages(model, x)[-layers:]
    else:
        maps = model.forward_intermediates(x, indices=layers, intermediates_only=True)
    return torch.cat([m.mean((2, 3)) for m in maps], 1)


CASES = [(VIT, pool, layers) for pool in ("default", "avg", "cls+avg") for layers in (1, 2)]
CASES += [(arch, "default", 1) for arch in (RESNET, CONVNEXT)]
CASES += [(arch, "avg", layers) for arch in (RESNET, CONVNEXT) for layers in (1, 2)]


@pytest.mark.parametrize(("arch", "pool", "layers"), CASES)
def test_cached_features_equal_a_direct_timm_computation(arch, pool, layers, weights, tmp_path):
    path, state = weights[arch]
    backbone = timm_backbone(arch, path, pool=pool, layers=layers)
    split, images = _images()
    transform = backbone.transform("eval", SIZE)
    features, hit = cached_features(backbone, split, transform, FeatureCache(tmp_path),
                                    batch_size=2, workers=0, progress=False)
    assert not hit and features.shape == (len(split), backbone.feature_dim)
    cfg = timm.models.get_pretrained_cfg(arch)
    reference = build_transform("eval", SIZE, True, cfg.mean, cfg.std)
    x = torch.stack([reference(image) for image in images])
    with torch.no_grad():
        expected = expected_features(arch, reference_model(arch, state), x, pool, layers)
    torch.testing.assert_close(features, expected, atol=2e-4, rtol=1e-4)
    again, hit = cached_features(backbone, split, transform, FeatureCache(tmp_path),
                                 batch_size=2, workers=0, progress=False)
    assert hit and torch.equal(again, features)


def test_vit_at_its_native_size_is_the_plain_timm_model(weights):
    """dynamic_img_size changes nothing at 160 px: the fixed-size model gives the same feature."""
    path, state = weights[VIT]
    backbone = timm_backbone(VIT, path)
    plain = timm.create_model(VIT, pretrained=False, num_classes=0)
    plain.load_state_dict({k: v for k, v in state.items() if not k.startswith("head.")})
    x = torch.rand(1, 3, 160, 160)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), plain.eval()(x))


def test_input_size_follows_the_model(weights, random_resnet50):
    vit = timm_backbone(VIT, weights[VIT][0])
    assert vit.image_size(None, 64) == 160  # native, whatever the dataset's default
    assert vit.image_size(48, 64) == 48
    with pytest.raises(ModelError, match="multiple of its patch size 16; 40 is not"):
        vit.image_size(40, 64)
    assert random_resnet50.image_size(None, 64) == 64  # the paper's models: the dataset's


def test_model_preprocessing_is_timms_eval_transform(weights):
    backbone = timm_backbone(VIT, weights[VIT][0], preprocess="model")
    transform = backbone.transform("eval", 160)
    model = reference_model(VIT, weights[VIT][1])
    config = timm.data.resolve_data_config({}, model=model)
    timm_transform = timm.data.create_transform(**config)
    _, images = _images(2)
    for image in images:
        torch.testing.assert_close(transform(image), timm_transform(image))
    assert transform.transform_id == (
        "timm-160-crop0.95-center-bicubic-norm-mean0.5_0.5_0.5-std0.5_0.5_0.5")
    assert backbone.transform("fewshot", 160).transform_id == transform.transform_id
    # finetuning keeps the paper's augmentation, with the model's statistics
    assert backbone.transform("train", 160).transform_id.startswith("train-160-norm-mean0.5_")
    paper = timm_backbone(VIT, weights[VIT][0]).transform("eval", 160)
    assert paper.transform_id == "eval-160-norm-mean0.5_0.5_0.5-std0.5_0.5_0.5"


# ----------------------------------------------------------------------------- identity


def test_cache_keys_differ_across_pool_layers_preprocess_and_weights(weights, tmp_path):
    path, state = weights[VIT]
    other = save_weights({**state, "cls_token": state["cls_token"] + 1}, tmp_path / "o.pth")
    settings = [
        {"weights": str(path)},
        {"weights": str(path), "pool": "avg"},
        {"weights": str(path), "pool": "cls+avg"},
        {"weights": str(path), "layers": 2},
        {"weights": str(path), "preprocess": "model"},
        {"weights": str(other)},
        {"random_init": True},
    ]
    split, _ = _images()
    cache = FeatureCache(tmp_path)
    paths, names = set(), set()
    for options in settings:
        backbone = load_backbone(f"timm:{VIT}", options=BackboneOptions(**options))
        transform = backbone.transform("eval", SIZE)
        paths.add(cache.path(backbone.name, split, backbone.identity, transform.transform_id,
                             "fp32"))
        names.add(backbone.name)
    assert len(paths) == len(names) == len(settings)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    backbone = timm_backbone(VIT, path, pool="cls+avg", layers=2)
    assert backbone.identity == (f"timm:{VIT}.r160_in1k|weights:{digest}"
                                 "|pool:cls+avg|layers:2")
    assert backbone.name == f"timm-{VIT}+weights-{VIT}+pool-cls+avg+layers2"
    described = backbone.describe()
    assert described["weights_sha256"] == digest and described["feature_dim"] == 4 * 64
    assert described["architecture"] == f"timm:{VIT}.r160_in1k"


def test_random_init_is_seeded_and_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = load_backbone(f"timm:{RESNET}", options=BackboneOptions(random_init=True))
    assert torch.equal(torch.random.get_rng_state(), before)
    b = load_backbone(f"timm:{RESNET}", options=BackboneOptions(random_init=True))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                 b.state_dict().values(), strict=True))
    assert a.identity == b.identity
    assert a.identity.endswith(f"|weights:random-init-seed0-timm{timm.__version__}|pool:default"
                               "|layers:1")


# ----------------------------------------------------------------------------- weights files


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin", ".safetensors"])
def test_every_format_and_wrapper_loads_the_same_tensors(suffix, weights, tmp_path):
    _, state = weights[CONVNEXT]
    payload = state
    if suffix == ".pth":
        payload = {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}
    elif suffix == ".pt":
        payload = {"model": state, "optimizer": {"lr": torch.tensor(0.1)}}
    path = save_weights(payload, tmp_path / f"w{suffix}")
    backbone = timm_backbone(CONVNEXT, path)
    loaded = backbone.trunk.model.state_dict()
    assert "head.fc.weight" not in loaded
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key


def test_dropped_classifier_and_unwrapping_are_said(weights, tmp_path, caplog):
    _, state = weights[RESNET]
    path = save_weights({"model": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "r.pth")
    with caplog.at_level("INFO", logger="models"):
        timm_backbone(RESNET, path)
    err = caplog.text
    assert "took the weights under 'model'" in err and "stripped the 'module.' prefix" in err
    assert "dropped the classifier's keys fc.bias, fc.weight" in err


@pytest.mark.parametrize(("change", "listed"), [
    ("rename", "unexpected keys: layer4.0.bn2.weight_renamed"),
    ("rename", "missing keys: layer4.0.bn2.weight"),
    ("drop", "missing keys: layer1.0.conv1.weight"),
    ("reshape", "wrong shape keys: layer2.0.conv2.weight: (48, 48, 3, 1) (expected "
                "(48, 48, 3, 3))"),
])
def test_a_file_that_does_not_fit_lists_its_keys(change, listed, weights, tmp_path):
    state = dict(weights[RESNET][1])
    if change == "rename":
        state["layer4.0.bn2.weight_renamed"] = state.pop("layer4.0.bn2.weight")
    elif change == "drop":
        del state["layer1.0.conv1.weight"]
    else:
        state["layer2.0.conv2.weight"] = state["layer2.0.conv2.weight"][..., :1].contiguous()
    path = save_weights(state, tmp_path / "bad.safetensors")
    with pytest.raises(ModelError) as error:
        timm_backbone(RESNET, path)
    assert f"{path} does not fit timm:{RESNET}" in str(error.value)
    assert listed in str(error.value)


@pytest.mark.parametrize(("write", "message"), [
    (lambda p: p.write_bytes(b"not a checkpoint"), "could not read"),
    (lambda p: torch.save({"epoch": 3, "args": "x"}, p), "is not a state dict: args, epoch"),
    (None, "no such file"),
])
def test_unreadable_weights_are_one_clear_error(write, message, tmp_path):
    path = tmp_path / "w.pth"
    if write is not None:
        write(path)
    with pytest.raises(ModelError, match=message):
        timm_backbone(RESNET, path)
    txt = tmp_path / "w.txt"
    txt.write_text("x")
    with pytest.raises(ModelError, match=r"expected a state dict file ending in \.pth"):
        timm_backbone(RESNET, txt)


# ----------------------------------------------------------------------------- names, options


def test_unknown_architecture_and_tag_name_close_ones():  # nothing is built: real names
    with pytest.raises(ModelError, match="timm has no architecture 'vit_tiny_patch16_22'; "
                                         "closest: vit_tiny_patch16_224"):
        load_backbone("timm:vit_tiny_patch16_22")
    with pytest.raises(ModelError, match="no pretrained tag 'a1_in1kk' for resnet18; its tags: "
                                         "resnet18.a1_in1k"):
        load_backbone("timm:resnet18.a1_in1kk")


@pytest.mark.parametrize(("options", "message"), [
    ({"pool": "cls+avg", "random_init": True}, "cls\\+avg needs a class token"),
    ({"layers": 2, "random_init": True}, "add --pool avg"),
    ({"layers": 9, "pool": "avg", "random_init": True}, "has 5 stages"),
    ({"weights": "w.pth", "random_init": True}, "exclude each other"),
])
def test_impossible_options_are_refused(options, message):
    with pytest.raises(ModelError, match=message):
        load_backbone(f"timm:{RESNET}", options=BackboneOptions(**options))


@pytest.mark.parametrize("options", [{"pool": "avg"}, {"layers": 2}, {"random_init": True},
                                     {"weights": "x.pth"}, {"preprocess": "model"}])
def test_resnet50_models_refuse_the_timm_options(options, tmp_path):
    flag = "--" + next(iter(options)).replace("_", "-")
    with pytest.raises(ModelError, match=f"{flag} apply to timm: models only; random is a "
                                         "ResNet-50"):
        load_backbone("random", options=BackboneOptions(**options))
    with pytest.raises(ModelError, match="--no-norm applies to ResNet-50 files"):
        load_backbone(f"timm:{RESNET}", no_norm=True, options=BackboneOptions(random_init=True))


# ----------------------------------------------------------------------------- pretrained


def test_no_cached_weights_offline_is_a_clear_error_within_seconds(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(ModelError) as error:
        load_backbone(f"timm:{REAL_VIT}")
    assert time.perf_counter() - start < 10
    message = str(error.value)
    assert "HF_HUB_OFFLINE is set" in message and "--weights FILE" in message
    assert (f"https://huggingface.co/timm/{REAL_VIT}.augreg_in21k_ft_in1k/resolve/main/"
            "model.safetensors") in message


def test_unreachable_hub_without_offline_flag_fails_fast(tmp_path, monkeypatch):
    """No HF_HUB_OFFLINE: one quick probe (port 9 refuses at once), not the client's retries."""
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        "http://127.0.0.1:9/{repo_id}/resolve/{revision}/{filename}")
    start = time.perf_counter()
    with pytest.raises(ModelError, match="the hub is not reachable .* --weights FILE"):
        load_backbone(f"timm:{REAL_RESNET}")
    assert time.perf_counter() - start < 10


def test_pretrained_weights_come_from_the_hub_cache(weights, tmp_path, monkeypatch):
    """A file in huggingface_hub's cache layout is found and loaded through timm, no network."""
    import huggingface_hub.constants

    path, state = weights[VIT]
    repo = tmp_path / f"models--timm--{VIT}.r160_in1k"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / digest).write_bytes(path.read_bytes())
    commit = "0" * 40
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to(repo / "blobs" / digest)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    backbone = load_backbone(f"timm:{VIT}")
    for key, value in backbone.trunk.model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert backbone.name == f"timm-{VIT}"
    assert backbone.identity == (f"timm:{VIT}.r160_in1k|weights:timm-pretrained:"
                                 f"timm/{VIT}.r160_in1k:{digest}|pool:default|layers:1")
    assert backbone.describe()["weights_sha256"] == digest
