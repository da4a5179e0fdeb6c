from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torchvision

import download_and_prepare_models as script
from tests.fixtures.checkpoints import reference_state_dict, write_source_checkpoint


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run(capsys):
    """The script's main in this process (its process boundary is not what is tested)."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = script.main(list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def test_moco_v2_from_file_loads_strictly_and_equals_encoder_q(tmp_path, run):
    state = reference_state_dict(seed=5)
    source = write_source_checkpoint("moco-v2", state, tmp_path / "moco_v2_800ep.pth.tar")
    result = run("--models", "moco-v2", "--from", str(source), "--models-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "matched 318 of 318 trunk tensors" in result.stdout
    assert "dropped" in result.stdout
    converted = torch.load(tmp_path / "moco-v2.pth", weights_only=True)
    model = torchvision.models.resnet50(weights=None)
    del model.fc
    model.load_state_dict(converted, strict=True)
    raw = torch.load(source, weights_only=True)["state_dict"]
    prefix = "module.encoder_q."
    expected = {
        k[len(prefix) :]: v
        for k, v in raw.items()
        if k.startswith(prefix) and not k.startswith(prefix + "fc.")
    }
    assert converted.keys() == expected.keys()
    assert all(torch.equal(converted[k], expected[k]) for k in expected)
    assert source.exists()  # the source is never touched


def test_bad_source_fails_and_writes_nothing(tmp_path, run):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"\x80\x02not a checkpoint")
    out = tmp_path / "models"
    result = run("--models", "swav", "--from", str(bad), "--models-dir", str(out))
    assert result.returncode == 1
    assert "could not read" in result.stderr and str(bad) in result.stderr
    assert "not a PyTorch checkpoint of weights" in result.stderr
    assert "weights_only" not in result.stderr  # never torch's advice to unpickle anything
    assert not (out / "swav.pth").exists()


def test_manual_models_print_their_steps_and_unknown_names_fail(tmp_path, run):
    result = run("--models", "simclr-v2", "--models-dir", str(tmp_path))
    assert result.returncode == 1 and "Separius/SimCLRv2-Pytorch" in result.stderr
    result = run("--models", "moco-v9", "--models-dir", str(tmp_path))
    assert result.returncode == 2 and "unknown model(s) moco-v9" in result.stderr
