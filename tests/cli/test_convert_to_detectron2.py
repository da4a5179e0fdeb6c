"""convert_to_detectron2.py end to end on a models/ folder written by the test."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.checkpoints import write_common_checkpoint
from tests.fixtures.detectron2_scripts import load_script

PAPER_MODELS = [
    "insdis", "moco-v1", "pcl-v1", "pirl", "pcl-v2", "simclr-v1", "moco-v2", "simclr-v2",
    "sela-v2", "infomin", "byol", "deepcluster-v2", "swav", "supervised",
]  # fmt: skip


@pytest.fixture(scope="module")
def script():
    return load_script("convert_to_detectron2.py")


def test_converts_present_and_skips_missing_model(script, tmp_path: Path, monkeypatch,
                                                  capsys) -> None:
    models_dir = tmp_path / "models"
    saved = write_common_checkpoint(models_dir / "byol.pth", seed=1)
    monkeypatch.setenv("SSL_TRANSFER_MODELS", str(models_dir))  # the default --models-dir
    assert script.main(["--models", "byol", "swav"]) == 0
    out = capsys.readouterr().out
    assert "skip swav" in out
    assert "python download_and_prepare_models.py --models swav" in out
    assert sorted(p.name for p in (models_dir / "detectron2").iterdir()) == ["byol.pkl"]

    with open(models_dir / "detectron2" / "byol.pkl", "rb") as f:
        payload = pickle.load(f)
    assert payload["__author__"] == "torchvision"
    assert payload["matching_heuristics"] is True
    model = payload["model"]
    assert len(saved) == 318
    assert len(model) == 265  # without the 53 num_batches_tracked counters FrozenBN lacks
    assert not [key for key in model if key.endswith("num_batches_tracked")]
    np.testing.assert_array_equal(model["stem.conv1.weight"], saved["conv1.weight"].numpy())
    np.testing.assert_array_equal(
        model["res3.0.shortcut.norm.running_var"],
        saved["layer2.0.downsample.1.running_var"].numpy(),
    )
    np.testing.assert_array_equal(
        model["res5.2.conv3.norm.bias"], saved["layer4.2.bn3.bias"].numpy()
    )


def test_default_models_are_the_papers_14(script) -> None:
    assert script.parse_args([]).models == PAPER_MODELS


def test_none_converted_exits_nonzero(script, tmp_path: Path, capsys) -> None:
    code = script.main(["--models", "pirl", "--models-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"skip pirl: {tmp_path / 'pirl.pth'} not found" in out
    assert "python download_and_prepare_models.py --models pirl" in out
    assert "no model converted" in err
    assert not (tmp_path / "detectron2").exists()


def test_bad_checkpoint_fails_naming_key_and_writes_nothing(script, tmp_path: Path, capsys):
    import torch

    state_dict = write_common_checkpoint(tmp_path / "moco-v2.pth", seed=0)
    state_dict["fc.bias"] = torch.zeros(1000)
    torch.save(state_dict, tmp_path / "moco-v2.pth")
    write_common_checkpoint(tmp_path / "swav.pth", seed=0)
    code = script.main(["--models", "moco-v2", "swav", "--models-dir", str(tmp_path)])
    _, err = capsys.readouterr()
    assert code == 1
    assert "error moco-v2" in err and "fc.bias" in err
    # the good model still converts; the bad one leaves no file at all
    assert sorted(p.name for p in (tmp_path / "detectron2").iterdir()) == ["swav.pkl"]


def test_unreadable_checkpoint_is_a_clear_error(script, tmp_path: Path, capsys) -> None:
    (tmp_path / "infomin.pth").write_bytes(b"not a checkpoint")
    code = script.main(["--models", "infomin", "--models-dir", str(tmp_path)])
    _, err = capsys.readouterr()
    assert code == 1
    assert f"could not read {tmp_path / 'infomin.pth'}" in err


def test_crash_mid_write_keeps_previous_pickle(script, tmp_path: Path, monkeypatch) -> None:
    import models.detectron2 as d2

    write_common_checkpoint(tmp_path / "byol.pth", seed=0)
    out = tmp_path / "detectron2" / "byol.pkl"
    out.parent.mkdir()
    out.write_bytes(b"previous")

    def dump_then_crash(obj, f):
        f.write(b"half a pickle")
        raise KeyboardInterrupt

    monkeypatch.setattr(d2.pickle, "dump", dump_then_crash)
    with pytest.raises(KeyboardInterrupt):
        script.main(["--models", "byol", "--models-dir", str(tmp_path)])
    assert out.read_bytes() == b"previous"
    assert [p.name for p in out.parent.iterdir()] == ["byol.pkl"]


def test_custom_models_convert_by_name_and_by_path(script, tmp_path: Path, capsys) -> None:
    models_dir = tmp_path / "models"
    mine = write_common_checkpoint(models_dir / "my-model.pth", seed=3)
    elsewhere = write_common_checkpoint(tmp_path / "elsewhere" / "other-net.pth", seed=4)
    argv = ["--models", "my-model", str(tmp_path / "elsewhere" / "other-net.pth"),
            "--models-dir", str(models_dir)]  # fmt: skip
    assert script.main(argv) == 0
    out = capsys.readouterr().out
    assert "converted 2 of 2" in out
    pickles = models_dir / "detectron2"
    assert sorted(p.name for p in pickles.iterdir()) == ["my-model.pkl", "other-net.pkl"]
    for name, saved in (("my-model", mine), ("other-net", elsewhere)):
        with open(pickles / f"{name}.pkl", "rb") as f:
            model = pickle.load(f)["model"]
        np.testing.assert_array_equal(model["res5.2.conv3.norm.bias"],
                                      saved["layer4.2.bn3.bias"].numpy())  # fmt: skip


def test_missing_custom_model_says_how_to_make_it(script, tmp_path: Path, capsys) -> None:
    assert script.main(["--models", "resnet18", "--models-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"skip resnet18: {tmp_path / 'resnet18.pth'} not found" in out
    assert "'resnet18' is not a registered model" in out and "without fc.*" in out


def test_custom_model_is_converted_and_a_missing_one_named(script, tmp_path: Path, capsys):
    saved = write_common_checkpoint(tmp_path / "my-resnet.pth", seed=2)
    assert script.main(["--models", "my-resnet", "--models-dir", str(tmp_path)]) == 0
    with open(tmp_path / "detectron2" / "my-resnet.pkl", "rb") as f:
        model = pickle.load(f)["model"]
    np.testing.assert_array_equal(model["stem.conv1.weight"], saved["conv1.weight"].numpy())
    capsys.readouterr()
    assert script.main(["--models", "resnet18", "--models-dir", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert f"skip resnet18: {tmp_path / 'resnet18.pth'} not found" in out
    assert "no model converted" in err


@pytest.mark.parametrize(("name", "message"), [
    ("timm:resnet50", "detection is a ResNet-50 protocol"),
    ("random", "'random' has no pretrained weights"),
])
def test_timm_and_random_are_refused_before_any_conversion(script, tmp_path, capsys, name,
                                                           message):
    write_common_checkpoint(tmp_path / "byol.pth", seed=0)
    assert script.main(["--models", "byol", name, "--models-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "detectron2").exists()
