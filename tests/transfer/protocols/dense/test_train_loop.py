"""The dense training loop (transfer/protocols/dense/train_loop.py): exact resumption (random
generators included), the metadata check on resume, per-rank seeds, host syncs only every
display_every iterations, and collectives on the group's device."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from tests.fixtures import dense_training
from tests.fixtures.dense_training import META, tiny_batches, tiny_model, tiny_schedule
from tests.fixtures.host_syncs import count_host_syncs
from tests.fixtures.threads import one_torch_thread  # noqa: F401 (autouse)
from transfer.protocols.dense import train_loop
from transfer.protocols.dense.train_loop import latest_checkpoint, train_dense
from transfer.runtime.checkpoint import CheckpointError


def _scramble_generators() -> None:
    """What a new process starts with: generators in another state."""
    random.seed(1234)
    np.random.seed(1234)
    torch.manual_seed(1234)


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch, caplog):
    """6 iterations straight, or 2 then Ctrl-C then a rerun: the same weights bit for bit. The
    model has dropout, so this fails unless the generators are saved and restored."""
    batches = tiny_batches(tmp_path / "data")
    straight = tiny_model()
    train_dense(straight, batches, tiny_schedule(), tmp_path / "a", META, "cpu", seed=7)

    real_save = train_loop.save_checkpoint

    def save_then_interrupt(path, state, context):
        real_save(path, state, context)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_loop, "save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train_dense(tiny_model(), batches, tiny_schedule(), tmp_path / "b", META, "cpu", seed=7)
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["epoch_1.pth"]
    _scramble_generators()
    resumed = tiny_model()
    last = train_dense(resumed, batches, tiny_schedule(), tmp_path / "b", META, "cpu", seed=7)
    assert "resuming from" in caplog.text
    assert last.name == "epoch_3.pth"
    for key, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key
    other_seed = tiny_model()
    train_dense(other_seed, batches, tiny_schedule(), tmp_path / "c", META, "cpu", seed=8)
    assert not torch.equal(other_seed.head.weight, straight.head.weight)  # dropout mattered


def test_resume_checks_the_metadata(tmp_path):
    batches = tiny_batches(tmp_path / "data")
    train_dense(tiny_model(), batches, tiny_schedule(1, 1), tmp_path / "ckpt", META, "cpu")
    with pytest.raises(CheckpointError, match=r"epoch_1.pth was written by another run "
                                              r"\(meta.model differ\); use another checkpoint"):
        train_dense(tiny_model(), batches, tiny_schedule(1, 1), tmp_path / "ckpt",
                    {**META, "model": "byol"}, "cpu")
    with pytest.raises(CheckpointError, match=r"\(lr_by_module, schedule.lr differ\)"):
        train_dense(tiny_model(), batches, replace(tiny_schedule(1, 1), lr=0.1), tmp_path / "ckpt",
                    META, "cpu")
    # more epochs continue the run (the toolkit's way to train longer)
    last = train_dense(tiny_model(), batches, tiny_schedule(1, 2), tmp_path / "ckpt", META, "cpu")
    assert last.name == "epoch_2.pth" and latest_checkpoint(tmp_path / "ckpt") == last
    (tmp_path / "ckpt" / "epoch_2.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint") as error:
        train_dense(tiny_model(), batches, tiny_schedule(1, 3), tmp_path / "ckpt", META, "cpu")
    assert "weights_only" not in str(error.value)


def test_host_syncs_only_every_display_every_iterations(tmp_path):
    batches = tiny_batches(tmp_path / "data")
    model = tiny_model()
    schedule = tiny_schedule(epoch_iters=10, num_epoch=1)
    with count_host_syncs() as syncs:
        train_dense(model, batches, schedule, tmp_path / "ckpt", META, "cpu", display_every=5)
    # a read at iterations 5 and 10, and the checkpoint's loss at 10
    assert len(syncs) <= 10 // 5 + 1, syncs.calls


def test_a_non_finite_loss_stops_before_any_checkpoint(tmp_path):
    model = tiny_model()
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="between iterations 0 and 2; no checkpoint"):
        train_dense(model, tiny_batches(tmp_path / "data"), tiny_schedule(), tmp_path / "ckpt",
                    META, "cpu")
    assert not (tmp_path / "ckpt").exists() or not list((tmp_path / "ckpt").iterdir())


def test_two_gloo_ranks_seed_and_save_their_own_generators(tmp_path):
    tiny_batches(tmp_path / "data")  # written once, before the ranks start
    mp.spawn(dense_training.train_rank,
             args=(2, str(tmp_path / "rendezvous"), "gloo", str(tmp_path / "data"),
                   str(tmp_path / "ckpt"), "cpu"), nprocs=2, join=True)
    state = torch.load(tmp_path / "ckpt" / "epoch_2.pth", weights_only=True)
    assert state["iteration"] == 2 and state["meta"]["world_size"] == 2
    first, second = state["rng"]
    assert not torch.equal(first["torch"], second["torch"])  # each rank its own stream
    assert first["numpy"]["keys"].ne(second["numpy"]["keys"]).any()


def test_a_group_without_a_cpu_backend_rejects_cpu_tensors(tmp_path):
    """NCCL has no backend for CPU tensors: reducing one failed at the first checkpoint of every
    multi-GPU dense run. A gloo group registered for CUDA only ("cuda:gloo") reproduces that on
    the CPU; plain gloo hides it. ``collective_device`` sends such tensors to CUDA (run for real
    by the gpu test below)."""
    mp.spawn(dense_training.probe_cuda_only_group,
             args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == {
            "error": "No backend type associated with device type cpu", "target": "cuda",
            "plain_gloo_sum": 3.0}


@pytest.mark.gpu
def test_dense_checkpoints_through_a_cuda_only_group(tmp_path):
    """The fixed path on a GPU: two ranks of a CUDA-only group on one GPU train, checkpoint and
    resume (the loss and the generators travel through the group's device)."""
    tiny_batches(tmp_path / "data")
    for _ in range(2):  # the second call resumes at the end: nothing left to train
        mp.spawn(dense_training.train_rank,
                 args=(2, str(tmp_path / f"rendezvous{_}"), "cuda:gloo", str(tmp_path / "data"),
                       str(tmp_path / "ckpt"), "cuda:0"), nprocs=2, join=True)
    state = torch.load(tmp_path / "ckpt" / "epoch_2.pth", weights_only=True)
    assert state["iteration"] == 2 and np.isfinite(state["loss"]) and len(state["rng"]) == 2
    assert "cuda" in state["rng"][0]
