"""The dense-task training loop (the MIT CSAIL toolkit's schedule): SGD with momentum, weight
decay on conv/linear weights only, learning rate ``lr * (1 - it / max_iters) ** power`` set
before every iteration, NLL loss on log-softmax logits with label -1 ignored.

"Epochs" are the toolkit's: ``epoch_iters`` iterations each (one batch per process per
iteration). After every epoch ``<ckpt>/epoch_<n>.pth`` holds the model, optimiser, iteration and
every rank's random generators (``transfer.checkpoint``; the previous file is removed), and a
rerun resumes from the newest if it was written by the same run (metadata and schedule; only
``num_epoch`` may grow, the toolkit's way to train longer). Each rank draws its own random
numbers (dropout), seeded by (seed, rank). The host waits for the device only every
``display_every`` iterations (loss check, progress) and at checkpoints.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from itertools import count
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from transfer.console import progress
from transfer.protocols.dense.samples import DenseDataError, TrainBatches
from transfer.runtime.checkpoint import load_checkpoint, save_checkpoint, seed_rank
from transfer.runtime.device import use_device
from transfer.runtime.distributed import SINGLE_PROCESS, Distributed, all_reduce_sum, barrier

logger = logging.getLogger(__name__)

CHECKPOINT = re.compile(r"epoch_(\d+)\.pth")
DISPLAY_EVERY = 20  # iterations between host syncs: the toolkit's TRAIN.disp_iter
GROWABLE = ("num_epoch",)  # what may differ when resuming: training longer


@dataclass(frozen=True)
class Schedule:
    epoch_iters: int
    num_epoch: int
    lr: float = 0.02
    lr_pow: float = 0.9
    momentum: float = 0.9
    weight_decay: float = 1e-4

    @property
    def max_iters(self) -> int:
        return self.epoch_iters * self.num_epoch


def parameter_groups(model: nn.Module, weight_decay: float, base_lr: float) -> list[dict]:
    """The toolkit's ``group_weight``: decay on conv/linear weights; none on biases and norms.
    Frozen parameters are left out; ``base_lr`` is the group's learning rate before decay."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            is_weight = name == "weight" and isinstance(
                module, (nn.Linear, nn.modules.conv._ConvNd))
            (decay if is_weight else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay, "base_lr": base_lr},
              {"params": no_decay, "weight_decay": 0.0, "base_lr": base_lr}]
    return [group for group in groups if group["params"]]


def poly_factor(schedule: Schedule, iteration: int) -> float:
    """The toolkit's poly decay: ``(1 - it / max_iters) ** lr_pow``."""
    return (1.0 - iteration / schedule.max_iters) ** schedule.lr_pow


def segmentation_loss(logits: torch.Tensor,
                      labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NLL of log-softmax with -1 ignored, and the pixel accuracy over labelled pixels."""
    if logits.shape[2:] != labels.shape[1:]:
        raise DenseDataError(f"decoder output {tuple(logits.shape[2:])} and labels "
                             f"{tuple(labels.shape[1:])} differ: check padding_constant and the "
                             "label downsampling rate against the network's output stride")
    loss = F.nll_loss(F.log_softmax(logits, dim=1), labels, ignore_index=-1)
    valid = labels >= 0
    accuracy = ((logits.argmax(1) == labels) & valid).sum() / valid.sum().clamp(min=1)
    return loss, accuracy


def latest_checkpoint(directory: str | Path) -> Path | None:
    found = [(int(m.group(1)), p) for p in Path(directory).glob("epoch_*.pth")
             if (m := CHECKPOINT.fullmatch(p.name))]
    return max(found)[1] if found else None


def batch_stream(dataset: TrainBatches, start_batch: int, context: Distributed,
                 workers: int, pin_memory: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """This rank's batches from the ``start_batch``-th on, pass after pass, forever."""
    skipped = 0
    for data_pass in count():
        keys = dataset.keys(data_pass, context.rank, context.world_size)
        if skipped + len(keys) <= start_batch:
            skipped += len(keys)
            continue
        keys = keys[max(0, start_batch - skipped):]
        skipped = start_batch
        # its own generator: a new pass never draws from the global RNG a checkpoint restores
        loader = DataLoader(dataset, batch_size=None, sampler=keys, num_workers=workers,
                            pin_memory=pin_memory, generator=torch.Generator())
        yield from loader


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def train_dense(model: nn.Module, dataset: TrainBatches, schedule: Schedule, ckpt_dir: str | Path,
                meta: dict[str, Any], device: str, context: Distributed = SINGLE_PROCESS,
                workers: int = 0, lr_by_module: dict[str, float] | None = None, seed: int = 0,
                display_every: int = DISPLAY_EVERY) -> Path:
    """Train ``model`` (an ``nn.Module`` mapping images to logits) to ``schedule.max_iters``,
    resuming from ``ckpt_dir`` if it holds a checkpoint of this run; returns the last
    checkpoint's path. A checkpoint of another run (other ``meta`` or schedule) is an error.

    ``lr_by_module``: base learning rates of named children (the toolkit's ``lr_encoder`` and
    ``lr_decoder``); by default every parameter starts at ``schedule.lr``. ``seed``: the random
    generators of rank r start from (seed, r). ``display_every``: iterations between the
    progress bar's loss / accuracy updates (the toolkit's ``disp_iter``), the only times the
    host waits for the device besides checkpoints.
    """
    ckpt_dir = Path(ckpt_dir)
    device_type = use_device(device).type
    model.to(device)
    if context.enabled:
        if device_type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[torch.device(device).index] if device_type == "cuda" else None)
    core = unwrap(model)
    lr_by_module = lr_by_module or {"": schedule.lr}
    groups = [group for name, lr in lr_by_module.items()
              for group in parameter_groups(core.get_submodule(name), schedule.weight_decay, lr)]
    optimizer = torch.optim.SGD(groups, lr=schedule.lr, momentum=schedule.momentum)
    identity = {"schedule": asdict(schedule), "meta": meta, "lr_by_module": lr_by_module}
    seed_rank(seed, context)
    resume = latest_checkpoint(ckpt_dir)
    state = load_checkpoint(resume, identity, context, strict=True, ignore=GROWABLE)
    start = 0
    if state is not None:
        core.load_state_dict(state["model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["iteration"])
        if context.is_main:
            logger.info("resuming from %s at iteration %d", resume, start)
    last = resume
    if start >= schedule.max_iters:
        return last
    model.train()
    stream = batch_stream(dataset, start, context, workers, pin_memory=device_type == "cuda")
    bar = progress(total=schedule.max_iters, initial=start, desc="train", enabled=context.is_main)
    # sums of (loss, accuracy) since the last sync, on the device
    meters = torch.zeros(2, dtype=torch.float64, device=device)
    since = start
    for iteration in range(start, schedule.max_iters):
        batch = next(stream)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * poly_factor(schedule, iteration)
        images = batch["images"].to(device, non_blocking=True)
        labels = batch["labels"].to(device, non_blocking=True)
        loss, accuracy = segmentation_loss(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            meters[0] += loss.detach()
            meters[1] += accuracy.detach()
        bar.update(1)
        done = iteration + 1
        at_checkpoint = done % schedule.epoch_iters == 0 or done == schedule.max_iters
        if done % display_every == 0 or at_checkpoint:
            # every rank sees the same sums, so all stop together on a non-finite loss
            loss_sum, accuracy_sum = (all_reduce_sum(meters, context) / context.world_size
                                      ).tolist()
            if not math.isfinite(loss_sum):
                raise FloatingPointError(f"the loss became {loss_sum} between iterations "
                                         f"{since} and {done}; no checkpoint was written")
            bar.set_postfix(loss=f"{loss_sum / (done - since):.4f}",
                            acc=f"{100 * accuracy_sum / (done - since):.1f}")
            meters.zero_()
            since = done
        if at_checkpoint:
            last = save_epoch(unwrap(model), optimizer, done, schedule, identity, ckpt_dir,
                              context, loss.detach())
    bar.close()
    return last


def save_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, iteration: int,
               schedule: Schedule, identity: dict[str, Any], ckpt_dir: Path,
               context: Distributed, loss: torch.Tensor) -> Path:
    """Rank 0 writes ``epoch_<n>.pth`` (with the ranks' mean of the last ``loss``) and removes
    older ones; all ranks wait."""
    mean_loss = all_reduce_sum(loss.double().reshape(1), context).item() / context.world_size
    epoch = -(-iteration // schedule.epoch_iters)
    path = ckpt_dir / f"epoch_{epoch}.pth"
    save_checkpoint(path, {**identity, "model": model.state_dict(),
                           "optimizer": optimizer.state_dict(), "iteration": iteration,
                           "loss": mean_loss}, context)
    if context.is_main:
        for old in ckpt_dir.glob("epoch_*.pth"):
            if old != path and CHECKPOINT.fullmatch(old.name):
                old.unlink()
    barrier(context)
    return path
