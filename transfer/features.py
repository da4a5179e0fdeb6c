"""Run a backbone over a split once: batched, workers, channels_last, no autograd."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from datasets import ImageDataset, Split

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


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

    ``precision="bf16"`` runs the backbone under bfloat16 autocast (the features are still
    returned as float32); the cache keys on it, so the two are never mixed.
    """
    device_type = torch.device(device).type
    loader = DataLoader(
        ImageDataset(split, transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=device_type == "cuda",
        persistent_workers=False,
    )
    model = backbone.to(device).to(memory_format=torch.channels_last).eval()
    features = torch.empty(len(split), backbone.feature_dim, dtype=torch.float32)
    autocast = torch.autocast(device_type, dtype=PRECISIONS[precision], enabled=precision != "fp32")
    start, done = time.perf_counter(), 0
    bar = tqdm(
        total=len(split),
        desc=f"features {split.dataset}/{split.name}",
        unit="img",
        disable=not progress,
    )
    with torch.inference_mode(), autocast, bar:
        for images, _ in loader:
            images = images.to(device, non_blocking=True).contiguous(
                memory_format=torch.channels_last
            )
            out = model(images)
            features[done : done + len(out)] = out.float().cpu()
            done += len(out)
            bar.update(len(out))
            bar.set_postfix(img_per_s=f"{done / (time.perf_counter() - start):.1f}")
    return features
