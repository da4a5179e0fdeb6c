"""Checkpoint and resume for the training loops (finetuning and the dense tasks).

One format: a dict written atomically by rank 0 (Ctrl-C or kill -9 never leaves a half-written
file), read with ``weights_only=True``, with a ``version`` and the fields that identify the run
(a checkpoint resumes only the run that wrote it), and every rank's random number generators
(python, numpy, torch CPU and the current CUDA device), so that a resumed run draws the same
dropout masks and random numbers as an uninterrupted one.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transfer.atomic import atomic_path
from transfer.errors import TransferError
from transfer.runtime.distributed import Distributed, broadcast_object, gather_objects

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION = 2


class CheckpointError(TransferError, ValueError):
    """A checkpoint that cannot be read, or that belongs to another run."""


def seed_rank(seed: int, context: Distributed) -> None:
    """Seed python, numpy and torch (CPU and CUDA) with a seed of its own per (seed, rank), so
    that ranks do not draw identical dropout masks."""
    rank_seed = int(np.random.SeedSequence([seed, context.rank]).generate_state(1)[0])
    random.seed(rank_seed)
    np.random.seed(rank_seed)
    torch.manual_seed(rank_seed)


def rng_state() -> dict[str, Any]:
    """This process's generator states, in types that ``weights_only`` loading accepts."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)),
                  "position": int(position), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()  # the current device's: this rank's GPU
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` returned."""
    random.setstate(_as_tuples(state["python"]))
    numpy = state["numpy"]
    np.random.set_state((numpy["name"], numpy["keys"].numpy().astype(np.uint32),
                         numpy["position"], numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _as_tuples(value: Any) -> Any:
    """``random.setstate`` wants the nested tuples ``getstate`` gave (loading may give lists)."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path``, or a ``CheckpointError`` saying it is not one."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a truncated or foreign file
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(error).__name__}); "
                              "is the file complete?") from error


def differences(saved: Any, expected: Any, ignore: Collection[str] = (), prefix: str = ""
                ) -> list[str]:
    """Dotted names of the fields where ``saved`` and ``expected`` differ (dicts compared key by
    key, keys named in ``ignore`` skipped at any depth)."""
    if isinstance(saved, dict) and isinstance(expected, dict):
        found = []
        for key in sorted(set(saved) | set(expected), key=str):
            if key in ignore:
                continue
            found += differences(saved.get(key), expected.get(key), ignore, f"{prefix}{key}.")
        return found
    return [] if saved == expected else [prefix.rstrip(".") or "value"]


def save_checkpoint(path: Path, state: dict[str, Any], context: Distributed) -> None:
    """Every rank calls this: their generator states are gathered and rank 0 writes ``state``
    with them (``rng``, one entry per rank) through a temporary file."""
    states = gather_objects(rng_state(), context)
    if context.is_main:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save({"version": CHECKPOINT_VERSION, **state, "rng": states}, tmp)


def load_checkpoint(path: Path | None, identity: dict[str, Any], context: Distributed,
                    strict: bool, log: Callable[[str], None] | None = None,
                    ignore: Collection[str] = ()) -> dict[str, Any] | None:
    """Rank 0 reads ``path`` and every rank gets it, its generators restored to the ones this
    rank saved; ``None`` when there is no checkpoint.

    ``identity``: top-level fields the checkpoint must hold with these values (minus the keys in
    ``ignore``). A checkpoint that cannot be read or belongs to another run raises a
    ``CheckpointError`` when ``strict``, else is reported through ``log`` and ignored (the run
    starts again).
    """
    state, problem = None, None
    if context.is_main and path is not None and path.exists():
        try:
            state = read_checkpoint(path)
            differ = differences({key: state.get(key) for key in identity}, identity, ignore)
            if state.get("version") != CHECKPOINT_VERSION:
                differ.insert(0, "version")
            if differ:
                raise CheckpointError(f"{path} was written by another run ({', '.join(differ)} "
                                      "differ)")
            if len(state["rng"]) != context.world_size:
                raise CheckpointError(f"{path} was written by {len(state['rng'])} processes, "
                                      f"not {context.world_size}")
        except CheckpointError as error:
            state = None
            if strict:
                problem = f"{error}; use another checkpoint folder or delete it"
            else:
                (log or logger.info)(f"ignoring checkpoint: {error}")
    state, problem = broadcast_object((state, problem), context)
    if problem:
        raise CheckpointError(problem)
    if state is not None:
        set_rng_state(state["rng"][context.rank])
    return state
