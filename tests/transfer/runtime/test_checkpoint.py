"""transfer/checkpoint.py: the one checkpoint format of the training loops."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from transfer.runtime.checkpoint import (
    CHECKPOINT_VERSION,
    CheckpointError,
    differences,
    load_checkpoint,
    save_checkpoint,
    seed_rank,
)
from transfer.runtime.distributed import Distributed


def _draw() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_generators_are_saved_and_restored(tmp_path):
    path = tmp_path / "ckpt" / "state.pt"
    seed_rank(3, Distributed())
    _draw()
    save_checkpoint(path, {"run": {"lr": 0.1}, "step": 7}, Distributed())
    expected = _draw()
    seed_rank(99, Distributed())  # a new process: other states
    state = load_checkpoint(path, {"run": {"lr": 0.1}}, Distributed(), strict=True)
    assert state["step"] == 7 and state["version"] == CHECKPOINT_VERSION
    assert _draw() == expected  # python, numpy and torch all continue where they were
    assert [p.name for p in path.parent.iterdir()] == ["state.pt"]  # no temporary file


def test_ranks_get_seeds_of_their_own():
    draws = []
    for rank in (0, 1, 0):
        seed_rank(5, Distributed(rank=rank, world_size=2))
        draws.append(_draw())
    assert draws[0] == draws[2]
    assert all(a != b for a, b in zip(draws[0], draws[1], strict=True))


def test_differences_name_the_fields():
    saved = {"meta": {"model": "byol", "recipe": {"num_epoch": 2, "lr": 0.02}}, "x": 1}
    wanted = {"meta": {"model": "swav", "recipe": {"num_epoch": 4, "lr": 0.02}}, "x": 1}
    assert differences(saved, wanted) == ["meta.model", "meta.recipe.num_epoch"]
    assert differences(saved, wanted, ignore=("num_epoch",)) == ["meta.model"]
    assert differences({"a": 1}, {"a": 1, "b": 2}) == ["b"]


def test_another_run_is_an_error_or_a_fresh_start(tmp_path):
    path = tmp_path / "state.pt"
    save_checkpoint(path, {"recipe": {"lr": 0.1, "seed": 0}}, Distributed())
    with pytest.raises(CheckpointError, match=r"state.pt was written by another run "
                                              r"\(recipe.lr differ\); use another checkpoint"):
        load_checkpoint(path, {"recipe": {"lr": 0.2, "seed": 0}}, Distributed(), strict=True)
    messages = []
    assert load_checkpoint(path, {"recipe": {"lr": 0.2, "seed": 0}}, Distributed(),
                           strict=False, log=messages.append) is None
    assert messages == [f"ignoring checkpoint: {path} was written by another run "
                        "(recipe.lr differ)"]
    # an older format and another number of processes are other runs too
    torch.save({"recipe": {"lr": 0.1, "seed": 0}, "version": 1, "rng": []}, path)
    with pytest.raises(CheckpointError, match=r"\(version differ\)"):
        load_checkpoint(path, {"recipe": {"lr": 0.1, "seed": 0}}, Distributed(), strict=True)
    save_checkpoint(path, {"recipe": {}}, Distributed())
    two_ranks = torch.load(path, weights_only=True)
    two_ranks["rng"] *= 2
    torch.save(two_ranks, path)
    with pytest.raises(CheckpointError, match="written by 2 processes, not 1"):
        load_checkpoint(path, {"recipe": {}}, Distributed(), strict=True)


def test_a_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "state.pt"
    path.write_bytes(b"\x80garbage")
    with pytest.raises(CheckpointError, match="is not a readable checkpoint") as error:
        load_checkpoint(path, {}, Distributed(), strict=True)
    assert "weights_only" not in str(error.value)
    assert load_checkpoint(tmp_path / "absent.pt", {}, Distributed(), strict=True) is None
