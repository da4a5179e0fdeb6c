"""The one vocabulary of ``--precision`` for feature extraction and finetuning.

- ``fp32``: float32 with TF32 off for matmuls and cuDNN (convolutions and RNNs). This torch
  runs cuDNN convolutions in TF32 by default on Ampere and later GPUs, which moves features by
  about 1e-3 relative: enough to move the capped L-BFGS fits of the linear protocol. So "fp32"
  means the numbers a CPU gives, on every device.
- ``tf32``: float32 tensors, TF32 matmuls and convolutions (faster on Ampere+; a precision of
  its own, so the feature cache never mixes it with fp32).
- ``bf16``: bfloat16 autocast over the forward pass; what stays float32 runs without TF32.

The flags are process-wide, so ``float32_mode`` sets them for a block and restores them after.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from transfer.runtime.device import DeviceError, device_name


@dataclass(frozen=True)
class Precision:
    name: str
    autocast_dtype: torch.dtype | None  # None: no autocast
    tf32: bool  # TF32 allowed for float32 matmuls and cuDNN
    help: str


PRECISIONS: dict[str, Precision] = {
    "fp32": Precision("fp32", None, False, "float32, TF32 off (the CPU's numbers on any device)"),
    "tf32": Precision("tf32", None, True, "float32 with TF32 matmuls/convolutions (Ampere+ GPUs)"),
    "bf16": Precision("bf16", torch.bfloat16, False, "bfloat16 autocast over forward passes"),
}


def get_precision(name: str) -> Precision:
    try:
        return PRECISIONS[name]
    except KeyError as error:
        raise DeviceError(f"unknown precision {name!r}; expected one of "
                          f"{', '.join(PRECISIONS)}") from error


def bf16_supported(device: str | torch.device) -> bool:
    """Native bfloat16 on ``device``: every CPU autocast; on CUDA, without emulation (pre-Ampere
    GPUs emulate bf16 through float32, slower than fp32 itself)."""
    if torch.device(device).type != "cuda":
        return True
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch without the argument: it reports native support only
        return torch.cuda.is_bf16_supported()


def check_precision(name: str, device: str | torch.device) -> Precision:
    """The ``Precision`` of ``name``, or a ``DeviceError`` if ``device`` cannot run it natively."""
    precision = get_precision(name)
    if precision.autocast_dtype == torch.bfloat16 and not bf16_supported(device):
        raise DeviceError(f"{device_name(device)} has no native bfloat16 (it would be emulated, "
                          "slower than float32); use --precision fp32 or tf32")
    return precision


def _tf32_flags() -> list[tuple[object, str]]:
    """The switches that decide TF32: cuBLAS matmuls and cuDNN (convolutions and RNNs). These
    are torch's ``allow_tf32`` flags: its newer ``fp32_precision`` settings make the
    ``allow_tf32`` getters raise once mixed with them, and other code still reads those."""
    return [(torch.backends.cuda.matmul, "allow_tf32"), (torch.backends.cudnn, "allow_tf32")]


@contextlib.contextmanager
def float32_mode(name: str) -> Iterator[Precision]:
    """Within the block, float32 matmuls and cuDNN run in TF32 only for ``tf32``; the previous
    settings are restored afterwards (also on error)."""
    precision = get_precision(name)
    flags = _tf32_flags()
    saved = [getattr(holder, attribute) for holder, attribute in flags]
    try:
        for holder, attribute in flags:
            setattr(holder, attribute, precision.tf32)
        yield precision
    finally:
        for (holder, attribute), old in zip(flags, saved, strict=True):
            setattr(holder, attribute, old)


def autocast(name: str, device: str | torch.device) -> torch.autocast:
    """The autocast context of the forward pass (disabled for the float32 precisions)."""
    precision = get_precision(name)
    dtype = precision.autocast_dtype
    return torch.autocast(torch.device(device).type, dtype=dtype or torch.float32,
                          enabled=dtype is not None)
