"""The one reader of ``--device``: what every protocol accepts, refuses and selects.

Apple's MPS is refused: the float64 solver chain, the training meters and the few-shot
distances all create float64 tensors, which MPS does not have, so a partial MPS path would
fail (or silently change precision) halfway through a run. CUDA and the CPU are supported.
"""

from __future__ import annotations

import argparse
import platform

import torch

from transfer.errors import TransferError


class DeviceError(TransferError, ValueError):
    """A ``--device`` that this project cannot run on (the message says what to use)."""


def parse_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``, or a ``DeviceError`` naming what to use instead."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise DeviceError(
            f"unknown device {str(device)!r}; expected cpu, cuda or cuda:N") from error
    if parsed.type == "mps":
        raise DeviceError("Apple MPS is not supported (no float64, which the solvers and meters "
                          "use); use --device cpu")
    if parsed.type not in ("cpu", "cuda"):
        raise DeviceError(f"device {str(device)!r} is not supported; expected cpu, cuda or cuda:N")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {device} but no CUDA GPU is visible; use --device cpu")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise DeviceError(f"--device {device} but only {count} CUDA GPU(s) are visible "
                              f"(cuda:0 to cuda:{count - 1})")
    return parsed


def device_argument(text: str) -> str:
    """``argparse`` type of ``--device``: the same checks, reported as a usage error."""
    try:
        parse_device(text)
    except DeviceError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return text


def use_device(device: str | torch.device) -> torch.device:
    """Check ``device`` and make a ``cuda:N`` the current CUDA device, so that pinned-memory
    threads, NCCL and ``torch.cuda`` calls without an index do not open a context on GPU 0."""
    parsed = parse_device(device)
    if parsed.type == "cuda" and parsed.index is not None:
        torch.cuda.set_device(parsed.index)
    return parsed


def device_name(device: str | torch.device | None) -> str:
    """What ran a computation, for records and cache entries: the GPU's name (e.g. NVIDIA H200),
    else ``cpu: <processor>``."""
    parsed = torch.device(device or "cpu")
    if parsed.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(parsed)
    processor = platform.processor() or platform.machine() or "unknown"
    return f"{parsed.type}: {processor}"
