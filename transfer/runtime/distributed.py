"""One process or many (``torchrun``): who we are, and the few collectives the finetuning needs.

Everything here is a no-op for a single process, so the protocol code calls it unconditionally.
Only rank 0 reads and writes results; it broadcasts what it read, so no shared file system is
assumed between nodes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from transfer.errors import TransferError
from transfer.runtime.device import use_device


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job (``world_size == 1``: no process group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE_PROCESS = Distributed()


def init_distributed(device: str, init_method: str | None = None, rank: int | None = None,
                     world_size: int | None = None) -> tuple[Distributed, str]:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE``/``RANK``/``LOCAL_RANK``), or
    the one given explicitly; return the context and this rank's device (``cuda:<local_rank>``).

    NCCL for CUDA, gloo otherwise. A single process (no ``WORLD_SIZE``) gets no process group.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1")) if world_size is None else world_size
    if world_size <= 1:
        use_device(device)
        return Distributed(), device
    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    device_type = use_device(device).type
    if device_type == "cuda":
        device = f"cuda:{local_rank}"
        use_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo",
                                init_method=init_method, rank=rank, world_size=world_size)
    return Distributed(rank=rank, world_size=world_size, local_rank=local_rank), device


def shard_bounds(n: int, context: Distributed) -> tuple[int, int]:
    """This rank's contiguous slice [start, stop) of ``n`` items, ceil(n / world) per rank, so
    concatenating the ranks' slices in rank order restores the original order."""
    per_rank = -(-n // context.world_size)
    start = min(n, context.rank * per_rank)
    return start, min(n, start + per_rank)


def gather_rows(rows: torch.Tensor, n: int, context: Distributed) -> torch.Tensor:
    """Concatenate every rank's ``shard_bounds`` rows (CPU tensors) into the (n, ...) whole.

    Shards are padded to one length for ``all_gather`` and trimmed again.
    """
    if not context.enabled:
        return rows
    per_rank = -(-n // context.world_size)
    padded = rows.new_zeros((per_rank, *rows.shape[1:]))
    padded[: len(rows)] = rows
    padded = padded.to(collective_device(padded))
    parts = [torch.empty_like(padded) for _ in range(context.world_size)]
    dist.all_gather(parts, padded)
    pieces = []
    for rank, part in enumerate(parts):
        start = min(n, rank * per_rank)
        pieces.append(part[: min(n, start + per_rank) - start].cpu())
    return torch.cat(pieces)


def collective_device(tensor: torch.Tensor) -> torch.device:
    """Where ``tensor`` must be for the default group's collectives: where it is if the group
    has a backend for that device type, else on the one device type it has a backend for (NCCL:
    the current CUDA device; a CPU tensor reduced through NCCL fails with "No backend type
    associated with device type cpu")."""
    types = [entry.split(":")[0] for entry in dist.get_backend_config().split(",")]
    if tensor.device.type in types:
        return tensor.device
    return torch.device(types[0])


def all_reduce_sum(values: torch.Tensor, context: Distributed) -> torch.Tensor:
    """Element-wise sum over ranks (in place, returned for convenience), through the group's
    device if ``values`` lives elsewhere."""
    if context.enabled:
        reduced = values.to(collective_device(values))
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        if reduced is not values:
            values.copy_(reduced)
    return values


def gather_objects(obj: Any, context: Distributed) -> list[Any]:
    """Every rank's ``obj`` in rank order on rank 0 (``[obj]`` for a single process; other ranks
    get an empty list)."""
    if not context.enabled:
        return [obj]
    gathered = [None] * context.world_size if context.is_main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered if context.is_main else []


def broadcast_object(obj: Any, context: Distributed) -> Any:
    """Rank 0's ``obj`` on every rank (a picklable value)."""
    if not context.enabled:
        return obj
    holder = [obj if context.is_main else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def on_main(task: Callable[[], Any], context: Distributed) -> Any:
    """Run ``task`` on rank 0 alone and give every rank its value; a TransferError it raises is
    raised on every rank, so none is left waiting in a later collective. For work that must
    happen once per job: ranks doing it side by side race (one rank's check folder is removed
    while the other is writing in it)."""
    value, error = None, None
    if context.is_main:
        try:
            value = task()
        except TransferError as raised:
            error = raised
    value, error = broadcast_object((value, error), context)
    if error is not None:
        raise error
    return value


def barrier(context: Distributed) -> None:
    if context.enabled:
        dist.barrier()


def shutdown(context: Distributed) -> None:
    """Leave the process group (what ``init_distributed`` joined)."""
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
