"""surface-normal-estimation end to end on a tiny NYUv2 tree, on CPU: prepare, train two
iterations (finite loss, frozen encoder untouched), resume, evaluate, results JSON."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.fixtures.checkpoints import write_common_checkpoint
from tests.fixtures.dense_data import make_nyuv2
from tests.fixtures.detectron2_scripts import REPO, load_script
from tests.fixtures.threads import one_torch_thread  # noqa: F401 (autouse)

FOLDER = "surface-normal-estimation"
TRAIN_OPTIONS = ["--device", "cpu", "--scales", "32", "40", "--max-size", "48", "--workers", "0"]


@pytest.fixture(scope="module")
def scripts():
    return {name: load_script(f"{FOLDER}/{name}.py")
            for name in ("prepare_nyuv2", "train", "evaluate")}


def test_prepare_train_resume_evaluate(scripts, tmp_path: Path, caplog) -> None:
    data = tmp_path / "data"
    make_nyuv2(data, n_train=2, n_test=2, size=(40, 32))
    weights = tmp_path / "models" / "byol.pth"
    reference = write_common_checkpoint(weights)
    assert scripts["prepare_nyuv2"].main(["--data-root", str(data)]) == 0
    ckpt = tmp_path / "ckpt"
    base = ["--weights", str(weights), "--ckpt", str(ckpt), "--data-root", str(data),
            "--epoch-iters", "1", *TRAIN_OPTIONS]
    assert scripts["train"].main([*base, "--num-epoch", "1"]) == 0
    first = torch.load(ckpt / "epoch_1.pth", weights_only=True)
    assert first["iteration"] == 1 and torch.isfinite(torch.tensor(first["loss"]))
    assert scripts["train"].main([*base, "--num-epoch", "2"]) == 0  # resumes at iteration 1
    assert "resuming from" in caplog.text
    state = torch.load(ckpt / "epoch_2.pth", weights_only=True)
    assert not (ckpt / "epoch_1.pth").exists()
    assert state["iteration"] == 2 and torch.isfinite(torch.tensor(state["loss"]))
    for key, value in reference.items():  # frozen, BN in eval: the encoder never moved
        assert torch.equal(state["model"][f"encoder.{key}"], value), key
    assert not torch.equal(state["model"]["decoder.conv_last.4.weight"],
                           first["model"]["decoder.conv_last.4.weight"])

    results = tmp_path / "results"
    assert scripts["evaluate"].main(["--ckpt", str(ckpt), "--data-root", str(data), "--device",
                                     "cpu", "--scales", "32", "--results-dir", str(results),
                                     "--workers", "0"]) == 0
    record = json.loads((results / "normals" / "byol.json").read_text())
    assert (record["protocol"], record["model"], record["dataset"]) == ("normals", "byol", "nyuv2")
    for key in ("mean_angle_error", "median_angle_error", "within_11.25", "within_22.5",
                "within_30"):
        assert 0 <= record[key] <= 180
    assert record["within_11.25"] <= record["within_22.5"] <= record["within_30"] <= 100
    assert record["score"] == record["median_angle_error"] and record["iterations"] == 2
    made = record["provenance"]
    assert made["checkpoint"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert made["trained_checkpoint"] == hashlib.sha256(
        (ckpt / "epoch_2.pth").read_bytes()).hexdigest()
    listing = data / "NYUv2" / "surfacenormal_metadata"
    assert made["splits"] == {
        split: hashlib.sha256((listing / f"{split}_SN40.json").read_bytes()).hexdigest()
        for split in ("train", "test")}
    assert made["transform"] == {"test": "normals-scales32-max1000-norm"}
    assert made["options"]["scales"] == [32] and made["options"]["recipe"]["num_epoch"] == 2


def test_clear_errors(scripts, tmp_path: Path, capsys) -> None:
    assert scripts["prepare_nyuv2"].main(["--data-root", str(tmp_path)]) == 2
    assert "no NYUv2 split list" in capsys.readouterr().err
    assert scripts["evaluate"].main(["--ckpt", str(tmp_path), "--device", "cpu"]) == 2
    assert "no checkpoint (epoch_<n>.pth)" in capsys.readouterr().err
    assert scripts["train"].main(["--weights", str(tmp_path / "x.pth"), "--ckpt",
                                  str(tmp_path / "c"), "--device", "cpu"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err


def test_shell_scripts_show_usage() -> None:
    for script in ("train_finetune_models.sh", "test_models.sh"):
        done = subprocess.run(["bash", str(REPO / FOLDER / "scripts" / script)],
                              capture_output=True, text=True)
        assert done.returncode == 2 and "usage:" in done.stderr


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_gpus_train_checkpoint_and_resume(scripts, tmp_path: Path) -> None:
    """The multi-GPU path (one process per GPU, NCCL): its checkpoints hold both ranks'
    generators, and a rerun resumes from them."""
    data = tmp_path / "data"
    make_nyuv2(data, n_train=4, n_test=2, size=(40, 32))
    weights = tmp_path / "models" / "byol.pth"
    write_common_checkpoint(weights)
    assert scripts["prepare_nyuv2"].main(["--data-root", str(data)]) == 0
    ckpt = tmp_path / "ckpt"
    command = [sys.executable, str(REPO / FOLDER / "train.py"), "--weights", str(weights),
               "--ckpt", str(ckpt), "--data-root", str(data), "--epoch-iters", "1",
               "--device", "cuda", "--gpus", "0,1", "--scales", "32", "40", "--max-size", "48",
               "--workers", "0"]
    for epochs in ("1", "2"):
        done = subprocess.run([*command, "--num-epoch", epochs], cwd=REPO, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from" in done.stderr  # logged
    state = torch.load(ckpt / "epoch_2.pth", weights_only=True)
    assert state["iteration"] == 2 and state["meta"]["world_size"] == 2
    assert len(state["rng"]) == 2 and torch.isfinite(torch.tensor(state["loss"]))
    assert not torch.equal(state["rng"][0]["cuda"], state["rng"][1]["cuda"])
