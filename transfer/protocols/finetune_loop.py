"""The finetuning loop of docs/protocols.md, "Finetuning": SGD (Nesterov, momentum 0.9), cosine
annealing over a fixed number of steps, cross-entropy (or BCE-with-logits for multi-label targets).

What makes it fast and resumable without changing the recipe:

- the data order is a function of (seed, step) alone: each epoch is a seeded permutation cut
  into global batches of ``batch_size``; with ``torchrun`` each rank takes its contiguous share
  of every global batch, and each sample's augmentation is seeded by (seed, epoch, index), so
  one process and N processes see the same images with the same crops, and a resumed run picks
  up exactly where the checkpoint left off;
- every rank's loss is scaled so that DistributedDataParallel's gradient average equals the
  gradient of the mean loss over the whole global batch (the single-process recipe);
- channels_last, optional bf16 autocast and ``torch.compile``, pinned memory and non-blocking
  copies, persistent DataLoader workers, and no host sync except every ``LOG_EVERY`` steps;
- ``fp32`` runs with TF32 off (``transfer.precision``): the CPU's numbers on any GPU.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from transfer import console
from transfer.errors import TransferError
from transfer.runtime.checkpoint import load_checkpoint, save_checkpoint
from transfer.runtime.device import use_device
from transfer.runtime.distributed import (
    SINGLE_PROCESS,
    Distributed,
    all_reduce_sum,
    gather_rows,
    shard_bounds,
)
from transfer.runtime.precision import autocast, check_precision, float32_mode

logger = logging.getLogger(__name__)

MOMENTUM = 0.9
LOG_EVERY = 10  # steps between host syncs for the progress bar


@dataclass(frozen=True)
class TrainConfig:
    """One finetuning run. ``weight_decay`` is the optimiser's (the original's grid wd / lr)."""

    steps: int
    lr: float
    weight_decay: float
    batch_size: int = 64  # global: split over the ranks
    seed: int = 0
    precision: str = "fp32"
    channels_last: bool = True
    compile: bool = False
    checkpoint_every: int = 0  # 0: never

    def recipe(self) -> dict:
        """The fields that decide the numbers (a checkpoint must match them to be resumed)."""
        fields = asdict(self)
        for speed_only in ("channels_last", "compile", "checkpoint_every"):
            fields.pop(speed_only)
        return fields


@dataclass(frozen=True)
class TrainStats:
    loss: float  # mean training loss over every step and sample (all ranks)
    accuracy: float  # percent; element-wise (logit >= 0) accuracy for multi-label targets
    images_per_s: float  # global images per second over the steps this call ran
    seconds: float
    resumed_from: int  # 0 unless a checkpoint was resumed
    weight_decay: float  # what the optimiser held, read back from it (the original's grid wd / lr)


class FinetuneError(TransferError, ValueError):
    """Settings, data or stored records that the finetuning protocol cannot use."""


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of sample ``index`` in ``epoch``: independent of ranks and workers."""
    return (seed * 1_000_003 + epoch) * 10_000_019 + index


class StepBatchSampler:
    """Yields this rank's share of the global batches of steps ``[start_step, stop_step)``.

    Epoch ``e`` is ``default_rng([seed, e]).permutation(n)`` cut into batches of
    ``batch_size``; the shorter last batch is kept (as the original's DataLoader did) unless it
    would leave a rank fewer than 2 samples (BatchNorm cannot train on one). Items are
    ``(index, augmentation seed)`` pairs for ``SeededSamples``. ``start_step``/``stop_step`` may
    be changed between iterations (persistent workers keep running meanwhile).
    """

    def __init__(self, n: int, batch_size: int, seed: int, context: Distributed) -> None:
        if batch_size < 2 * context.world_size:
            raise FinetuneError(f"batch size {batch_size} leaves fewer than 2 images per rank "
                             f"on {context.world_size} ranks; BatchNorm needs at least 2")
        if n < batch_size:
            raise FinetuneError(f"{n} training images are fewer than one batch of {batch_size}")
        self.n, self.batch_size, self.seed, self.context = n, batch_size, seed, context
        tail = n % batch_size
        self.keep_tail = tail >= 2 * context.world_size
        self.steps_per_epoch = n // batch_size + int(self.keep_tail)
        self.start_step = 0
        self.stop_step = 0
        self._epoch: tuple[int, np.ndarray] | None = None

    def permutation(self, epoch: int) -> np.ndarray:
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n))
        return self._epoch[1]

    def global_batch(self, step: int) -> tuple[int, np.ndarray]:
        """(epoch, dataset indices of the whole global batch) of ``step``."""
        epoch, position = divmod(step, self.steps_per_epoch)
        start = position * self.batch_size
        return epoch, self.permutation(epoch)[start:start + self.batch_size]

    def global_batch_size(self, step: int) -> int:
        return len(self.global_batch(step)[1])

    def rank_share(self, step: int) -> list[tuple[int, int]]:
        epoch, batch = self.global_batch(step)
        share = np.array_split(batch, self.context.world_size)[self.context.rank]
        return [(int(i), sample_seed(self.seed, epoch, int(i))) for i in share]

    def __iter__(self):
        for step in range(self.start_step, self.stop_step):
            yield self.rank_share(step)

    def __len__(self) -> int:
        return max(0, self.stop_step - self.start_step)


class SeededSamples(Dataset):
    """``dataset[(index, seed)]``: the sample with torch's RNG seeded for its augmentation (and
    restored afterwards, so the caller's RNG stream is untouched)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]):
        index, seed = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


def _loader_options(workers: int, device: str) -> dict:
    options: dict = {"num_workers": workers, "pin_memory": torch.device(device).type == "cuda"}
    if workers > 0:
        options.update(persistent_workers=True, prefetch_factor=4)
    return options


def make_train_loader(dataset: Dataset, batch_size: int, seed: int, context: Distributed,
                      workers: int, device: str) -> DataLoader:
    """A reusable step-based loader over ``dataset``; ``train_steps`` sets the step range."""
    sampler = StepBatchSampler(len(dataset), batch_size, seed, context)
    # a generator of its own: starting an epoch never draws from torch's global RNG, which a
    # checkpoint restores (the samples' augmentation is seeded by SeededSamples)
    return DataLoader(SeededSamples(dataset), batch_sampler=sampler, generator=torch.Generator(),
                      **_loader_options(workers, device))


def eval_batch_size(batch_size: int, world_size: int) -> int:
    """Per-rank evaluation batch: twice the per-rank training batch (no activations are kept
    for a backward pass), so evaluation needs no more memory per GPU than training."""
    return 2 * -(-batch_size // world_size)


def make_eval_loader(dataset: Dataset, batch_size: int, context: Distributed, workers: int,
                     device: str) -> DataLoader:
    """This rank's contiguous shard of ``dataset``, in order (``predict`` gathers the shards)."""
    start, stop = shard_bounds(len(dataset), context)
    return DataLoader(Subset(dataset, range(start, stop)), batch_size=batch_size, shuffle=False,
                      **_loader_options(workers, device))


def finetune_loss(logits: torch.Tensor, targets: torch.Tensor, global_count: int,
                  world_size: int = 1) -> torch.Tensor:
    """Cross-entropy for class indices, BCE-with-logits for float 0/1 targets (multi-label).

    Returns this rank's summed per-sample loss times ``world_size / global_count``: averaged over
    the ranks (as DDP averages gradients) that is the mean over the global batch, which for one
    rank is exactly ``F.cross_entropy`` / ``F.binary_cross_entropy_with_logits`` with the mean
    reduction (BCE averages over samples and classes, like ``nn.BCEWithLogitsLoss``).
    """
    logits = logits.float()
    if targets.is_floating_point():
        total = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
        total = total / logits.shape[1]
    else:
        total = F.cross_entropy(logits, targets, reduction="sum")
    return total * (world_size / global_count)


def correct_count(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Correct predictions in the batch: argmax hits, or for multi-label targets the mean over
    classes of (logit >= 0) == target per sample (the original's training accuracy)."""
    if targets.is_floating_point():
        return ((logits >= 0).float() == targets).float().mean(dim=1).sum()
    return (logits.argmax(dim=1) == targets).sum().float()


class TrainStep:
    """One step of the recipe on a batch: forward (autocast per ``config.precision``), the
    global-batch loss, SGD and the scheduler, and the running sums (loss, correct, samples) kept
    on the device, so a step never waits for the GPU. ``train_steps`` runs it over the loader;
    ``benchmarks/finetune_bench.py`` times it on a fixed batch. Call it inside
    ``float32_mode(config.precision)``."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                 config: TrainConfig, device: str, world_size: int = 1) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.config, self.device, self.world_size = config, device, world_size
        self.meters = torch.zeros(3, dtype=torch.float64, device=device)

    def __call__(self, images: torch.Tensor, targets: torch.Tensor, global_count: int) -> None:
        images = images.to(self.device, non_blocking=True)
        if self.config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = targets.to(self.device, non_blocking=True)
        with autocast(self.config.precision, self.device):
            logits = self.model(images)
        loss = finetune_loss(logits, targets, global_count, self.world_size)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        with torch.no_grad():  # Python numbers enter as kernel arguments: no host-device copy
            self.meters[0] += loss.detach().double() * (global_count / self.world_size)
            self.meters[1] += correct_count(logits.detach(), targets).double()
            self.meters[2] += len(targets)


def train_steps(net: nn.Module, loader: DataLoader, config: TrainConfig, device: str,
                context: Distributed = SINGLE_PROCESS, checkpoint: Path | None = None,
                progress: bool = True, desc: str = "finetune",
                log: Callable[[str], None] | None = None) -> TrainStats:
    """Train ``net`` (already on ``device``, BN in train mode) for ``config.steps`` steps of
    ``loader`` (from ``make_train_loader``), resuming from ``checkpoint`` when it holds a state
    of the same recipe and saving one every ``config.checkpoint_every`` steps (rank 0). What it
    has to say goes to ``log`` (default: this module's logger)."""
    log = log or logger.info
    check_precision(config.precision, use_device(device))
    sampler: StepBatchSampler = loader.batch_sampler
    device_type = torch.device(device).type
    if config.channels_last:
        net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=MOMENTUM, nesterov=True,
                                weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps)
    start = 0
    recipe = config.recipe()
    state = load_checkpoint(checkpoint, {"recipe": recipe}, context, strict=False, log=log)
    if state is not None:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start = int(state["step"])
        if context.is_main:
            log(f"{desc}: resuming from step {start} of {config.steps} ({checkpoint})")
    model: nn.Module = net
    if context.enabled:
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[torch.device(device).index] if device_type == "cuda" else None)
    if config.compile:
        model = torch.compile(model)
    step_once = TrainStep(model, optimizer, scheduler, config, device, context.world_size)
    meters = step_once.meters
    if state is not None and context.is_main:
        # the saved sums are global; the other ranks add their own from now on
        meters += state["meters"].to(device)
    net.train()
    sampler.start_step, sampler.stop_step = start, config.steps
    bar = console.progress(total=config.steps, initial=start, desc=desc, unit="step",
                           enabled=progress and context.is_main)
    images_seen, began = 0, time.perf_counter()
    step = start
    try:
        with float32_mode(config.precision):
            for images, targets in loader:
                global_count = sampler.global_batch_size(step)
                step_once(images, targets, global_count)
                step += 1
                images_seen += global_count
                bar.update(1)
                if (context.is_main and progress
                        and (step % LOG_EVERY == 0 or step == config.steps)):
                    loss_sum, correct, count = meters.tolist()
                    elapsed = time.perf_counter() - began
                    bar.set_postfix(loss=f"{loss_sum / max(count, 1):.4f}",
                                    acc=f"{100 * correct / max(count, 1):.2f}",
                                    lr=f"{scheduler.get_last_lr()[0]:.2e}",
                                    img_s=f"{images_seen / elapsed:.1f}")
                if (config.checkpoint_every and checkpoint is not None and step < config.steps
                        and step % config.checkpoint_every == 0):
                    totals = all_reduce_sum(meters.clone(), context)
                    save_checkpoint(checkpoint, {
                        "recipe": recipe, "step": step, "model": net.state_dict(),
                        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "meters": totals.cpu()}, context)
    finally:
        bar.close()
    if step != config.steps:
        raise FinetuneError(f"the loader stopped after step {step} of {config.steps}")
    seconds = time.perf_counter() - began
    loss_sum, correct, count = all_reduce_sum(meters, context).tolist()
    return TrainStats(loss=loss_sum / count if count else math.nan,
                      accuracy=100.0 * correct / count if count else math.nan,
                      images_per_s=images_seen / seconds if seconds > 0 else math.nan,
                      seconds=seconds, resumed_from=start,
                      weight_decay=float(optimizer.param_groups[0]["weight_decay"]))


@torch.no_grad()
def predict(net: nn.Module, loader: DataLoader, n: int, device: str,
            context: Distributed = SINGLE_PROCESS, precision: str = "fp32",
            channels_last: bool = True, progress: bool = True, desc: str = "predict"
            ) -> torch.Tensor:
    """(n, classes) float32 logits on the CPU in dataset order, BN in eval mode, gathered over
    the ranks of ``loader`` (from ``make_eval_loader``)."""
    check_precision(precision, use_device(device))
    was_training = net.training
    net.eval()
    outputs = []
    with float32_mode(precision), autocast(precision, device):
        for images, _ in console.progress(loader, desc=desc, unit="batch",
                                          enabled=progress and context.is_main, leave=False):
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            outputs.append(net(images).float())
    net.train(was_training)
    local = torch.cat(outputs).cpu() if outputs else torch.empty(0)
    if context.enabled and not outputs:  # a rank with an empty shard still joins the gather
        local = torch.empty(0, _output_width(net, loader, device))
    return gather_rows(local, n, context)


def _output_width(net: nn.Module, loader: DataLoader, device: str) -> int:
    """Number of output columns, for a rank whose shard is empty (tiny evaluation sets)."""
    dataset = loader.dataset.dataset
    image, _ = dataset[0]
    net.eval()
    return int(net(image.unsqueeze(0).to(device)).shape[1])
