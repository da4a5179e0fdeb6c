"""Every registered source format, synthesised from one reference ResNet-50, converts back to the
reference exactly and gives identical features."""

from __future__ import annotations

import pytest
import torch

from models.convert import convert_file
from models.errors import ModelError
from models.loader import load_backbone
from models.prepare import prepare_model
from models.registry import MODELS, PAPER_MODELS
from models.resnet50 import trunk_shapes
from tests.fixtures.checkpoints import (
    reference_state_dict,
    trunk_only,
    write_byol_pickle,
    write_source_checkpoint,
)

# Formats that carry no BN step counters: the converter fills them with 0.
NO_COUNTERS = {"byol", "simclr-v2"}


@pytest.fixture(scope="module")
def reference():
    return reference_state_dict(seed=1)


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_every_registered_format_converts_to_the_reference(name, reference, tmp_path):
    source = write_source_checkpoint(name, reference, tmp_path / f"{name}.source")
    state_dict, report = convert_file(MODELS[name], source)
    expected = trunk_only(reference)
    assert list(state_dict) == list(trunk_shapes())
    assert len(state_dict) == 318
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and name in NO_COUNTERS:
            assert state_dict[key].item() == 0
        else:
            assert torch.equal(state_dict[key], value), key
    assert report.matched == (265 if name in NO_COUNTERS else 318)
    assert report.filled == (53 if name in NO_COUNTERS else 0)


@pytest.mark.parametrize("name", ["moco-v2", "byol", "swav", "pirl"])
def test_converted_file_gives_the_reference_features(name, reference, tmp_path):
    source = write_source_checkpoint(name, reference, tmp_path / "source")
    path, _ = prepare_model(MODELS[name], tmp_path, source)
    backbone = load_backbone(name, tmp_path)
    model = __import__("torchvision").models.resnet50(weights=None)
    model.load_state_dict(reference)
    model.fc = torch.nn.Identity()
    model.eval()
    images = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(backbone(images), model(images), atol=1e-5)
    assert backbone(images).shape == (2, 2048)


def test_moco_keeps_only_the_query_encoder(reference, tmp_path):
    source = write_source_checkpoint("moco-v2", reference, tmp_path / "moco.pth.tar")
    _, report = convert_file(MODELS["moco-v2"], source)
    assert any(key.startswith("module.encoder_k.") for key in report.dropped)
    assert "module.queue" in report.dropped
    assert "fc.0.weight" in report.dropped
    assert "dropped" in report.summary() and "matched 318 of 318" in report.summary()


def test_unknown_extra_keys_are_listed(reference, tmp_path):
    weights = {f"module.{k}": v for k, v in trunk_only(reference).items()}
    weights["module.mystery.weight"] = torch.zeros(3)
    del weights["module.layer4.2.bn3.running_var"]
    path = tmp_path / "swav.pth"
    torch.save(weights, path)
    with pytest.raises(ModelError) as error:
        convert_file(MODELS["swav"], path)
    assert "mystery.weight" in str(error.value)
    assert "layer4.2.bn3.running_var" in str(error.value)


def test_wrong_shapes_are_listed(reference, tmp_path):
    weights = dict(trunk_only(reference))
    weights["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    path = tmp_path / "simclr.pth"
    torch.save({"state_dict": weights}, path)
    with pytest.raises(ModelError, match=r"conv1.weight: \(64, 3, 3, 3\)"):
        convert_file(MODELS["simclr-v1"], path)


def test_truncated_and_foreign_files_are_clear_errors_and_write_nothing(reference, tmp_path):
    source = write_source_checkpoint("moco-v2", reference, tmp_path / "moco.pth.tar")
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    text = tmp_path / "notes.txt"
    text.write_text("<html>this is a web page, not a checkpoint</html>")
    out = tmp_path / "out"
    out.mkdir()
    for bad in (truncated, text):
        with pytest.raises(ModelError, match="could not read .*: not a PyTorch checkpoint"):
            prepare_model(MODELS["moco-v2"], out, bad)
    with pytest.raises(ModelError, match="BYOL"):
        prepare_model(MODELS["byol"], out, text)
    assert list(out.iterdir()) == []


def test_byol_pickle_with_foreign_code_is_refused(tmp_path):
    import pickle

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"experiment_state": __import__("os").system}))
    with pytest.raises(ModelError, match="refusing"):
        convert_file(MODELS["byol"], path)


def test_byol_layer_order_is_checked(reference, tmp_path):
    path = write_byol_pickle(reference, tmp_path / "byol.pkl")
    state_dict, _ = convert_file(MODELS["byol"], path)
    # conv kernels are HWIO in Haiku and OIHW in torch: an unpermuted copy would differ
    assert torch.equal(state_dict["layer1.0.conv2.weight"], reference["layer1.0.conv2.weight"])
    assert torch.equal(state_dict["bn1.running_var"], reference["bn1.running_var"])
