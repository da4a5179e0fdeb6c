"""The dense tasks' encoder really carries the pretrained weights (strict, torchvision layout)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from models.errors import ModelError
from tests.fixtures.checkpoints import write_common_checkpoint
from tests.fixtures.dense_data import make_ade20k
from transfer.protocols.dense import normals_task, segmentation_task
from transfer.protocols.dense.encoder import ResNetStages, load_encoder

CONFIG = Path(__file__).resolve().parents[4] / "semantic-segmentation" / "selfsupconfig"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    path = tmp_path_factory.mktemp("models") / "byol.pth"
    return path, write_common_checkpoint(path, seed=3)


def assert_equal_tensors(module_state: dict, reference: dict) -> None:
    assert set(module_state) == set(reference)
    for key, value in reference.items():
        assert torch.equal(module_state[key], value), key


def test_normals_encoder_equals_checkpoint_and_stays_frozen(checkpoint) -> None:
    path, reference = checkpoint
    model, backbone = normals_task.pretrained_model(str(path))
    encoder_state = {k[len("encoder."):]: v for k, v in model.state_dict().items()
                     if k.startswith("encoder.")}
    assert_equal_tensors(encoder_state, reference)
    assert backbone.name == "byol" and backbone.normalize
    model.train()
    assert not model.encoder.training
    assert all(not m.training for m in model.encoder.modules())
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.decoder.parameters())


def test_segmentation_encoder_equals_checkpoint(checkpoint, tmp_path: Path) -> None:
    path, reference = checkpoint
    make_ade20k(tmp_path, n_train=1, n_val=1)
    config = segmentation_task.load_config(
        CONFIG / "byol.yaml", ["MODEL.weights_encoder", str(path)], data_root=tmp_path)
    model, _ = segmentation_task.pretrained_model(config)
    encoder_state = {k[len("encoder."):]: v for k, v in model.state_dict().items()
                     if k.startswith("encoder.")}
    assert_equal_tensors(encoder_state, reference)
    model.train()
    assert model.encoder.training and all(p.requires_grad for p in model.encoder.parameters())


def test_stage_outputs_match_torchvision(checkpoint) -> None:
    """Plain: the four stages of torchvision's own forward. Dilated: output stride 8."""
    path, reference = checkpoint
    net = torchvision.models.resnet50(weights=None)
    net.fc = torch.nn.Identity()
    net.load_state_dict(reference)
    net.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        y = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        expected = []
        for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
            y = layer(y)
            expected.append(y)
        plain, _ = load_encoder(str(path))
        stages = plain.eval()(x)
        dilated, _ = load_encoder(str(path), dilated=True, frozen=True)
        dilated_stages = dilated(x)
    for got, want in zip(stages, expected, strict=True):
        torch.testing.assert_close(got, want)
    assert [tuple(s.shape[1:]) for s in dilated_stages] == [
        (256, 8, 8), (512, 4, 4), (1024, 4, 4), (2048, 4, 4)]
    conv = dilated.layer4[1].conv2
    assert conv.dilation == (4, 4) and conv.stride == (1, 1)
    assert dilated.layer3[0].conv2.dilation == (1, 1) and dilated.layer4[0].conv2.dilation == (2, 2)


def test_simclr_file_keeps_registry_normalisation(checkpoint, tmp_path: Path) -> None:
    path = tmp_path / "simclr-v1.pth"
    path.write_bytes(checkpoint[0].read_bytes())
    _, backbone = load_encoder(str(path))
    assert backbone.name == "simclr-v1" and backbone.normalize is False


def test_wrong_keys_and_missing_file_are_clear(checkpoint, tmp_path: Path) -> None:
    state = dict(checkpoint[1])
    state["conv2.weight"] = state.pop("conv1.weight")  # a deep-stem-like key
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(ModelError, match="missing keys: conv1.weight"):
        load_encoder(str(bad))
    with pytest.raises(ModelError, match="no checkpoint at"):
        load_encoder(str(tmp_path / "absent.pth"))


def test_frozen_encoder_keeps_batchnorm_statistics(checkpoint) -> None:
    encoder, _ = load_encoder(str(checkpoint[0]), dilated=True, frozen=True)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    encoder.train()
    with torch.no_grad():
        encoder(torch.randn(2, 3, 32, 32))
    assert_equal_tensors(encoder.state_dict(), before)
    assert isinstance(encoder, ResNetStages)
