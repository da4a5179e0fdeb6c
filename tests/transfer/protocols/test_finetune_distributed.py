"""Data-parallel finetuning (2 gloo processes on the CPU) agrees with one process.

What is compared, and why it must agree:
- ``test_two_ranks_train_like_one``: a BatchNorm-free tiny net trained for a few steps with the
  same global batch (16 = 2 x 8), seeded data order and seeded per-sample augmentation. Each rank
  gets half of every global batch and scales its loss so that DDP's gradient average is the
  gradient of the global-batch mean; so the weights after training equal the 1-process weights
  up to float summation order (atol 1e-5), and so do the gathered test logits (597 = 299 + 298
  rows, in dataset order) and the mean training loss. A bug in sharding, loss scaling,
  gathering or padding moves them by far more.
- ``test_torchrun_finetune_cli``: the script through a real ``torchrun`` (the one test of that
  process boundary), on timm's tiny test ResNet: the model is not what is tested, the launch,
  the ranks' environment and rank 0's records are. With BatchNorm in train mode each gloo rank
  normalises over its own 8 images (no SyncBatchNorm on the CPU), so the numbers are not
  comparable to one process; instead it checks that one record is written (rank 0 only), that
  the test metric covers all 597 images exactly once, and that the recorded score is the
  accuracy of the saved gathered logits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp

from datasets import load_split
from tests.fixtures.finetune_ddp_worker import train_tiny
from tests.fixtures.threads import one_torch_thread  # noqa: F401 (autouse)

REPO = Path(__file__).resolve().parents[3]
STEPS = 6


def test_two_ranks_train_like_one(tmp_path):
    threads = torch.get_num_threads()
    try:
        train_tiny(0, 1, str(tmp_path / "unused"), str(tmp_path / "one.pt"), STEPS)
    finally:
        torch.set_num_threads(threads)
    # forked ranks: two real processes in a gloo group, without re-importing torch in each (the
    # lines they run are those torchrun's ranks run in test_torchrun_finetune_cli, where coverage
    # sees them: a forked rank exits without saving coverage data)
    mp.start_processes(train_tiny, nprocs=2, join=True, start_method="fork",
                       args=(2, str(tmp_path / "rendezvous"), str(tmp_path / "two.pt"), STEPS))
    one = torch.load(tmp_path / "one.pt", weights_only=True)
    two = torch.load(tmp_path / "two.pt", weights_only=True)
    initial = __import__("tests.fixtures.finetune_ddp_worker",
                         fromlist=["tiny_net"]).tiny_net().state_dict()
    for key, value in one["state"].items():
        assert not torch.allclose(value, initial[key]), f"{key} did not train"
        torch.testing.assert_close(two["state"][key], value, atol=1e-5, rtol=1e-5)
    assert one["logits"].shape == two["logits"].shape == (597, 10)
    torch.testing.assert_close(two["logits"], one["logits"], atol=1e-5, rtol=1e-5)
    assert abs(two["stats"]["loss"] - one["stats"]["loss"]) < 1e-5
    assert abs(two["stats"]["accuracy"] - one["stats"]["accuracy"]) < 1e-9


def test_torchrun_finetune_cli(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", str(REPO / "finetune.py"), "--dataset", "digits",
               "--model", "timm:test_resnet", "--random-init", "--steps", "2", "--lr", "0.01",
               "--wd", "0", "--image-size", "16", "--batch-size", "16", "--workers", "0",
               "--device", "cpu", "--no-progress", "--results-dir", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    # a rank's own error line first: torchrun's tail names only the rank that was killed
    errors = [line for line in done.stderr.splitlines() if "finetune.py: error" in line]
    assert done.returncode == 0, "\n".join(errors) + "\n" + done.stderr[-2000:]
    name = "timm-test_resnet+random-init"
    assert done.stdout.count(f"{name} on digits: test accuracy") == 1  # rank 0 alone reports
    folder = tmp_path / "finetune"
    # one record and its logits; no checkpoint or temporary file left behind
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == [
        f"{name}__digits__lr0.01_wd0.json", f"{name}__digits__lr0.01_wd0.npz"]
    record = json.loads((folder / f"{name}__digits__lr0.01_wd0.json").read_text())
    assert record["world_size"] == 2 and record["n_eval"] == 597 and record["n_train"] == 1200
    logits = np.load(folder / f"{name}__digits__lr0.01_wd0.npz")["scores"]
    targets = load_split("digits", "test").targets
    assert logits.shape == (597, 10)
    assert record["score"] == 100.0 * np.mean(logits.argmax(1) == targets)
