"""Run a dense-task entry point on the requested devices.

``--gpus 0,1`` (the original README's commands) starts one process per GPU with
``torch.multiprocessing`` and the environment ``torchrun`` would give them (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``, and ``LOCAL_RANK`` = the GPU id); under
``torchrun`` the entry point runs as is. The entry point joins the group with
``transfer.distributed.init_distributed``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import torch
import torch.multiprocessing as mp

from transfer.console import setup_console
from transfer.runtime.device import DeviceError


def parse_gpus(text: str) -> list[int]:
    """``0,1`` or ``0-3`` (or ``gpu0,gpu1``) -> GPU indices."""
    ids: list[int] = []
    try:
        for part in str(text).replace("gpu", "").split(","):
            if "-" in part:
                first, last = part.split("-")
                ids.extend(range(int(first), int(last) + 1))
            elif part.strip():
                ids.append(int(part))
    except ValueError as error:
        raise DeviceError(f"--gpus {text!r}: expected ids like 0,1 or 0-3") from error
    if not ids or len(set(ids)) != len(ids):
        raise DeviceError(f"--gpus {text!r}: expected distinct GPU ids")
    return ids


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, entry: Callable[..., Any], args: Any, ids: list[int]) -> None:
    # init_distributed puts each process on cuda:<LOCAL_RANK>: here, the rank's GPU id.
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(ids[rank]), WORLD_SIZE=str(len(ids)))
    setup_console()  # a spawned process starts with logging unconfigured
    entry(args, "cuda")


def launch(entry: Callable[[Any, str], Any], args: Any, device: str, gpus: str) -> None:
    """Call ``entry(args, device)`` once per process: one per GPU of ``gpus`` on CUDA (spawned
    here unless torchrun already did), else once on ``device``."""
    if torch.device(device).type != "cuda" or "WORLD_SIZE" in os.environ:
        entry(args, device)
        return
    ids = parse_gpus(gpus)
    if not torch.cuda.is_available():
        raise DeviceError("--device cuda but no GPU is visible; use --device cpu")
    if len(ids) == 1:
        entry(args, f"cuda:{ids[0]}")
        return
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    mp.spawn(_worker, args=(entry, args, ids), nprocs=len(ids), join=True)
