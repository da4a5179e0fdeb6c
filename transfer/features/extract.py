"""Run a backbone over a split once: batched, workers, channels_last, no autograd, and no host
sync per batch (features land in a pinned host buffer through non-blocking copies; one sync at
the end)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.utils.data import DataLoader

from datasets import ImageDataset, Split
from transfer import console
from transfer.runtime.device import use_device
from transfer.runtime.precision import autocast, check_precision, float32_mode


def extract_features(
    backbone: torch.nn.Module,
    split: Split,
    transform: Callable,
    batch_size: int = 64,
    device: str = "cpu",
    workers: int = 2,
    precision: str = "fp32",
    progress: bool = True,
) -> torch.Tensor:
    """Return the (n, backbone.feature_dim) float32 features of ``split`` on the CPU, in the
    split's order.

    ``precision`` is one of ``transfer.precision.PRECISIONS`` (fp32: TF32 off; tf32; bf16
    autocast, the features still returned as float32); the cache keys on it, so they are never
    mixed.
    """
    device_type = use_device(device).type
    check_precision(precision, device)
    loader = DataLoader(
        ImageDataset(split, transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=device_type == "cuda",
        persistent_workers=False,
    )
    return backbone_features(backbone, loader, len(split), device, precision, progress,
                             desc=f"features {split.dataset}/{split.name}")


def backbone_features(
    backbone: torch.nn.Module,
    loader: Iterable,
    n: int,
    device: str = "cpu",
    precision: str = "fp32",
    progress: bool = True,
    desc: str = "features",
) -> torch.Tensor:
    """The (n, backbone.feature_dim) float32 features on the CPU of the ``(images, _)`` batches
    of ``loader``, in order. Each batch's features are copied without waiting into a pinned host
    buffer; the device is synchronised once, at the end."""
    device_type = torch.device(device).type
    model = backbone.to(device).to(memory_format=torch.channels_last).eval()
    features = torch.empty(
        n, backbone.feature_dim, dtype=torch.float32, pin_memory=device_type == "cuda"
    )
    done = 0
    bar = console.progress(total=n, desc=desc, unit="img", enabled=progress)
    with torch.inference_mode(), float32_mode(precision), autocast(precision, device), bar:
        for images, _ in loader:
            images = images.to(device, non_blocking=True).contiguous(
                memory_format=torch.channels_last
            )
            out = model(images)
            features[done : done + len(out)].copy_(out.float(), non_blocking=True)
            done += len(out)
            bar.update(len(out))
    if device_type == "cuda":
        torch.cuda.synchronize(device)
    if done != n:
        raise ValueError(f"{desc}: the loader gave {done} images, expected {n}")
    return features
