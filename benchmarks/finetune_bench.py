#!/usr/bin/env python
"""Training throughput of the finetuning step: the original recipe against ours, same device.

- original: fp32, contiguous (NCHW) tensors, a blocking host->device copy, and two host syncs per
  step (``loss.item()`` and the accuracy), as the original finetune.py did (torch's default
  TF32 flags);
- ours: ``transfer.train.TrainStep``, the step the finetuning loop runs: pinned memory with a
  non-blocking copy, no per-step sync, and ``torch.compile`` where it works (CUDA by default);
  once in fp32 (TF32 off) NCHW, once with bf16 autocast and channels_last.

Both train the same ResNet-50 + linear head with SGD (Nesterov, momentum 0.9) and cosine
annealing on a fixed synthetic batch, so only the step itself is timed (no data loading).

    python benchmarks/finetune_bench.py                 # CPU: 64 px, batch 16, a few steps
    python benchmarks/finetune_bench.py --device cuda   # GPU: 224 px, batch 64
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import FEATURE_DIM, build_trunk  # noqa: E402
from transfer.protocols.arguments import default_device  # noqa: E402
from transfer.protocols.finetune_loop import TrainConfig, TrainStep  # noqa: E402
from transfer.protocols.finetune_runs import FinetuneNet  # noqa: E402
from transfer.runtime.precision import float32_mode  # noqa: E402

NUM_CLASSES = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--image-size", type=int, default=None, help="224 on CUDA, else 64")
    parser.add_argument("--batch-size", type=int, default=None, help="64 on CUDA, else 16")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (30 CUDA, 3 CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (10 CUDA, 1 CPU)")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                        help="torch.compile ours: auto = on CUDA only (CPU compile takes minutes)")
    return parser.parse_args()


def new_model(device: str) -> tuple[nn.Module, torch.optim.Optimizer, object]:
    torch.manual_seed(0)
    net = FinetuneNet(build_trunk(), NUM_CLASSES, FEATURE_DIM).to(device).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                                weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10_000)
    return net, optimizer, scheduler


def original_step(device: str):
    net, optimizer, scheduler = new_model(device)
    criterion = nn.CrossEntropyLoss()

    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        output = net(images)
        loss = criterion(output, labels)
        (output.argmax(dim=1) == labels).float().mean().item()
        loss.backward()
        optimizer.step()
        loss.item()
        scheduler.step()

    return step


def our_step(device: str, compile_model: bool, precision: str = "bf16",
             channels_last: bool = True):
    """The finetuning loop's own step (``transfer.train.TrainStep``) on a fixed batch."""
    net, optimizer, scheduler = new_model(device)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    model = torch.compile(net) if compile_model else net
    config = TrainConfig(steps=10_000, lr=0.01, weight_decay=1e-4, precision=precision,
                         channels_last=channels_last)
    step = TrainStep(model, optimizer, scheduler, config, device)
    return lambda images, labels: step(images, labels, len(labels))


def images_per_second(step, images, labels, steps: int, warmup: int, device: str,
                      precision: str | None = None) -> float:
    """Images per second of ``step`` after ``warmup`` untimed steps; ``precision``: run inside
    its float32 mode (None: torch's default flags, as the original ran)."""
    cuda = torch.device(device).type == "cuda"
    synchronize = torch.cuda.synchronize if cuda else (lambda: None)
    with float32_mode(precision) if precision else contextlib.nullcontext():
        for _ in range(warmup):
            step(images, labels)
        synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step(images, labels)
        synchronize()
    return steps * len(images) / (time.perf_counter() - start)


def measure(device: str, size: int, batch: int, steps: int, warmup: int,
            compile_model: bool) -> dict[str, float]:
    """Images/s of the original step and of ours in fp32 NCHW and in bf16 channels_last, on
    the same synthetic batch."""
    cuda = torch.device(device).type == "cuda"
    torch.manual_seed(0)
    images = torch.randn(batch, 3, size, size)
    labels = torch.randint(0, NUM_CLASSES, (batch,))
    if cuda:
        images, labels = images.pin_memory(), labels.pin_memory()
    return {
        "original": images_per_second(original_step(device), images, labels, steps, warmup,
                                      device),
        "fp32": images_per_second(our_step(device, compile_model, "fp32", False), images,
                                  labels, steps, warmup, device, "fp32"),
        "bf16_channels_last": images_per_second(our_step(device, compile_model), images, labels,
                                                steps, warmup, device, "bf16"),
    }


def main() -> None:
    args = parse_args()
    cuda = torch.device(args.device).type == "cuda"
    size = args.image_size or (224 if cuda else 64)
    batch = args.batch_size or (64 if cuda else 16)
    steps = args.steps or (30 if cuda else 3)
    warmup = args.warmup or (10 if cuda else 1)
    compile_model = args.compile == "on" or (args.compile == "auto" and cuda)
    threads = torch.get_num_threads()
    device_name = torch.cuda.get_device_name() if cuda else f"CPU ({threads} threads)"
    print(f"device {device_name}, image {size}px, batch {batch}, {steps} timed steps "
          f"after {warmup} warm-up")
    result = measure(args.device, size, batch, steps, warmup, compile_model)
    original = result["original"]
    compiled = ", compiled" if compile_model else ""
    print(f"original (fp32, NCHW, sync per step): {original:8.1f} images/s")
    for key, label in (("fp32", f"fp32 (TF32 off), NCHW{compiled}"),
                       ("bf16_channels_last", f"bf16 autocast, channels_last{compiled}")):
        print(f"ours ({label}): {result[key]:8.1f} images/s, "
              f"ratio ours / original: {result[key] / original:.2f}x")


if __name__ == "__main__":
    main()
