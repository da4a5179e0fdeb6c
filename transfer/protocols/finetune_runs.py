"""The pieces of the finetuning protocol: the (lr, wd) grid, the network, the settings, and one
run's state (splits, transforms, loaders, resumable point records) with the grid search and the
per-seed final runs built on it. ``protocols.finetune`` puts them together."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from datasets import ImageDataset, get_dataset_spec, load_split
from models import BackboneOptions, load_backbone
from transfer.protocols.finetune_loop import (
    FinetuneError,
    TrainConfig,
    TrainStats,
    eval_batch_size,
    make_eval_loader,
    make_train_loader,
    predict,
    train_steps,
)
from transfer.records.outputs import read_test_outputs, write_test_outputs
from transfer.records.provenance import provenance, software_versions
from transfer.records.results import read_result, result_path, write_result
from transfer.runtime.distributed import Distributed, broadcast_object
from transfer.stats.bootstrap import interval_fields
from transfer.stats.calibration import calibration_record
from transfer.stats.metrics import first_best, score

logger = logging.getLogger(__name__)

PROTOCOL = "finetune"


LR_EXPONENTS = (-4.0, -1.0)


WD_EXPONENTS = (-6.0, -3.0)


SEED_INTERVAL_LEVEL = 0.95



def finetune_grid(grid_size: int = 4) -> list[tuple[float, float]]:
    """The paper's (lr, wd) pairs in the original's order: lr = logspace(-4, -1, g) largest first,
    and for each lr, wd = [0] + logspace(-6, -3, g); ``grid_size`` 4 gives the paper's 20 runs.

    ``wd`` is the grid value; the optimiser's weight decay is ``wd / lr``
    (``optimizer_weight_decay``).
    """
    if grid_size < 1:
        raise FinetuneError(f"grid size must be >= 1, got {grid_size}")
    lrs = np.logspace(*LR_EXPONENTS, grid_size)[::-1]
    wds = np.concatenate([[0.0], np.logspace(*WD_EXPONENTS, grid_size)])
    return [(float(lr), float(wd)) for lr in lrs for wd in wds]


def optimizer_weight_decay(lr: float, wd: float) -> float:
    """The original divided the grid's wd by lr, so the decay per step is lr * (wd / lr) = wd."""
    return wd / lr


def point_name(lr: float, wd: float) -> str:
    """File stem of a grid point, e.g. ``lr0.01_wd1e-05``."""
    return f"lr{lr:.4g}_wd{wd:.4g}"


class FinetuneNet(nn.Module):
    """The backbone's trunk (a ``feature_dim``-wide feature) and a new linear classifier, all
    trained."""

    def __init__(self, trunk: nn.Module, num_classes: int, feature_dim: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(images))


@dataclass(frozen=True)
class FinetuneSettings:
    """Everything ``run_finetune`` needs; ``None`` means the dataset's / environment's default."""

    model: str
    dataset: str
    batch_size: int = 64
    image_size: int | None = None
    steps: int = 5000
    grid_size: int = 4
    data_augmentation: bool = True
    no_norm: bool = False
    lr: float | None = None
    wd: float | None = None
    seed: int = 0
    precision: str = "fp32"
    compile: bool = False
    checkpoint_every: int = 500
    workers: int = 4
    data_root: str | None = None
    models_dir: str | None = None
    results_dir: str | None = None
    progress: bool = True
    backbone: BackboneOptions = BackboneOptions()  # timm models: weights, pool, layers, preprocess
    bootstrap: int = 2000
    seeds: int = 1


def check_settings(settings: FinetuneSettings) -> None:
    """Refuse settings no run can honour, before anything is loaded."""
    if (settings.lr is None) != (settings.wd is None):
        raise FinetuneError("give both --lr and --wd to skip the search, or neither")
    if settings.lr is not None and settings.lr <= 0:
        raise FinetuneError(f"--lr must be > 0, got {settings.lr}")
    if settings.wd is not None and settings.wd < 0:
        raise FinetuneError(f"--wd must be >= 0, got {settings.wd}")
    for name in ("steps", "batch_size", "grid_size"):
        if getattr(settings, name) < 1:
            raise FinetuneError(f"{name.replace('_', '-')} must be >= 1, "
                                f"got {getattr(settings, name)}")
    if settings.image_size is not None and settings.image_size < 1:
        raise FinetuneError(f"image size must be >= 1, got {settings.image_size}")
    if settings.workers < 0:
        raise FinetuneError(f"workers must be >= 0, got {settings.workers}")
    if settings.checkpoint_every < 0:
        raise FinetuneError(f"checkpoint-every must be >= 0, got {settings.checkpoint_every}")
    if settings.bootstrap < 0:
        raise FinetuneError(f"bootstrap must be >= 0, got {settings.bootstrap}")
    if settings.seeds < 1:
        raise FinetuneError(f"seeds must be >= 1, got {settings.seeds}")


def read_matching(path: Path, recipe: dict, context: Distributed) -> dict | None:
    """Rank 0 reads a finished record made by ``recipe`` (None if absent); every rank gets it.
    A record from another recipe is an error rather than silently mixed into this one."""
    record, problem = None, None
    if context.is_main and path.exists():
        record = read_result(path)
        if record.get("recipe") != recipe:
            differ = sorted(k for k in set(recipe) | set(record.get("recipe") or {})
                            if recipe.get(k) != (record.get("recipe") or {}).get(k))
            problem = (f"{path} was made with other settings ({', '.join(differ)} differ); "
                       "delete it (and its folder) or pass --results-dir to keep both")
    record, problem = broadcast_object((record, problem), context)
    if problem:
        raise FinetuneError(problem)
    return record


class FinetuneRun:
    """The state one protocol run shares between its grid points and the final fit."""

    def __init__(self, settings: FinetuneSettings, context: Distributed, device: str) -> None:
        self.settings, self.context, self.device = settings, context, device
        self.spec = get_dataset_spec(settings.dataset)
        self.backbone = load_backbone(settings.model, settings.models_dir, settings.no_norm,
                                      settings.backbone)
        self.image_size = self.backbone.image_size(settings.image_size,
                                                   self.spec.default_image_size)
        normalize = self.backbone.normalize
        kind = "train" if settings.data_augmentation else "eval"
        self.train_transform = self.backbone.transform(kind, self.image_size)
        self.eval_transform = self.backbone.transform("eval", self.image_size)
        self.recipe = {
            "steps": settings.steps, "batch_size": settings.batch_size,
            "image_size": self.image_size, "data_augmentation": settings.data_augmentation,
            "normalize": normalize, "seed": settings.seed, "precision": settings.precision,
        }
        base = result_path(PROTOCOL, self.backbone.name, self.spec.name,
                           results_dir=settings.results_dir)
        self.points_dir = base.with_suffix("")
        self.checkpoint_dir = self.points_dir / "ckpt"
        self.sync_bn = context.enabled and torch.device(device).type == "cuda"
        self._splits: dict = {}

    def split(self, name: str):
        """The split ``name``, loaded once per run."""
        if name not in self._splits:
            self._splits[name] = load_split(self.spec.name, name, self.settings.data_root)
        return self._splits[name]

    def provenance(self, split_names: tuple[str, ...]) -> dict:
        options = {**dataclasses.asdict(self.settings), "image_size": self.image_size}
        return provenance(
            self.backbone.identity, {name: self.split(name) for name in split_names},
            {"train": self.train_transform.transform_id, "eval": self.eval_transform.transform_id},
            options, self.device)

    def loaders(self, train_split: str, eval_split: str):
        """(train loader, eval loader, eval targets) of two splits."""
        s = self.settings
        train, evaluation = self.split(train_split), self.split(eval_split)
        train_loader = make_train_loader(ImageDataset(train, self.train_transform), s.batch_size,
                                         s.seed, self.context, s.workers, self.device)
        eval_loader = make_eval_loader(ImageDataset(evaluation, self.eval_transform),
                                       eval_batch_size(s.batch_size, self.context.world_size),
                                       self.context, s.workers, self.device)
        return train_loader, eval_loader, evaluation.targets

    def new_net(self) -> nn.Module:
        """A fresh copy of the pretrained trunk and a new head, seeded so reruns agree."""
        torch.manual_seed(self.settings.seed)
        net = FinetuneNet(copy.deepcopy(self.backbone.trunk), self.spec.num_classes,
                          self.backbone.feature_dim)
        if self.sync_bn:  # BN statistics over the global batch, as on one GPU
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        return net.to(self.device)

    def train_and_score(self, lr: float, wd: float, train_loader, eval_loader, eval_targets,
                        name: str, desc: str) -> tuple[TrainStats, np.ndarray, float]:
        s = self.settings
        config = TrainConfig(steps=s.steps, lr=lr, weight_decay=optimizer_weight_decay(lr, wd),
                             batch_size=s.batch_size, seed=s.seed, precision=s.precision,
                             compile=s.compile, checkpoint_every=s.checkpoint_every)
        net = self.new_net()
        checkpoint = self.checkpoint_dir / f"{name}.pt"
        stats = train_steps(net, train_loader, config, self.device, self.context, checkpoint,
                            progress=s.progress, desc=desc)
        logits = predict(net, eval_loader, len(eval_targets), self.device, self.context,
                         s.precision, progress=s.progress, desc=f"{desc} eval").numpy()
        return stats, logits, score(self.spec.metric, eval_targets, logits)

    def common_fields(self) -> dict:
        return {"protocol": PROTOCOL, "model": self.backbone.name, "dataset": self.spec.name,
                "metric": self.spec.metric, "backbone": self.backbone.describe(),
                "transform_id": self.eval_transform.transform_id,
                "world_size": self.context.world_size,
                "sync_bn": self.sync_bn, "versions": software_versions(),
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat()}

    def log(self, message: str) -> None:
        """Progress of the grid and the seeds, said once (by rank 0)."""
        if self.context.is_main:
            logger.info(message)

    def finish_point(self, name: str, path: Path, record: dict) -> None:
        if self.context.is_main:
            write_result(path, record)
            (self.checkpoint_dir / f"{name}.pt").unlink(missing_ok=True)


def train_fields(stats: TrainStats) -> dict:
    return {"train_loss": stats.loss, "train_accuracy": stats.accuracy,
            "images_per_s": stats.images_per_s, "train_seconds": stats.seconds,
            "resumed_from_step": stats.resumed_from}


def search_grid(run: FinetuneRun, grid: list[tuple[float, float]]) -> list[dict]:
    """Train on train, score on val, for every (lr, wd); finished points are read, not rerun."""
    records: list[dict | None] = []
    for lr, wd in grid:
        records.append(read_matching(run.points_dir / f"{point_name(lr, wd)}.json",
                                      run.recipe, run.context))
    todo = sum(record is None for record in records)
    run.log(f"grid: {len(grid)} points, {len(grid) - todo} done, {todo} to train")
    if todo:
        train_loader, eval_loader, eval_targets = run.loaders("train", "val")
    for i, ((lr, wd), record) in enumerate(zip(grid, records, strict=True)):
        name = point_name(lr, wd)
        label = f"[{i + 1}/{len(grid)}] {name}"
        if record is not None:
            run.log(f"{label}: done, val {record['score']:.2f} (skipped)")
            continue
        stats, _, val_score = run.train_and_score(lr, wd, train_loader, eval_loader,
                                                  eval_targets, name, label)
        record = {**run.common_fields(), "stage": "search", "lr": lr, "wd": wd,
                  "weight_decay": stats.weight_decay, "train_split": "train",
                  "eval_split": "val", "score": val_score, "n_train": len(train_loader.dataset),
                  "n_eval": len(eval_targets), "recipe": run.recipe, **train_fields(stats),
                  "provenance": run.provenance(("train", "val"))}
        run.finish_point(name, run.points_dir / f"{name}.json", record)
        run.log(f"{label}: val {run.spec.metric} {val_score:.2f}")
        records[i] = record
    return records


def best_point(records: list[dict]) -> dict:
    """The record with the highest val score; the earliest wins a tie (the original's strict >)."""
    return records[first_best([record["score"] for record in records])]


def seed_runs(run: FinetuneRun, lr: float, wd: float, final_recipe: dict) -> list[dict]:
    """The final train+val -> test run once per seed, each kept as a resumable record with its
    test outputs; returns ``{"record", "targets", "scores"}`` per seed, in seed order."""
    settings = run.settings
    seeds = [settings.seed + i for i in range(settings.seeds)]
    done = []
    for seed in seeds:
        recipe = {**final_recipe, "seed": seed}
        path = run.points_dir / f"final_{point_name(lr, wd)}_seed{seed}.json"
        done.append((seed, path, recipe, read_matching(path, recipe, run.context)))
    runs = []
    for i, (seed, path, recipe, record) in enumerate(done):
        label = f"[seed {i + 1}/{len(seeds)}] {seed}"
        if record is not None:
            outputs = broadcast_object(read_test_outputs(path) if run.context.is_main else None,
                                       run.context)
            run.log(f"{label}: done, test {record['score']:.2f} (skipped)")
            runs.append({"record": record, "targets": outputs["targets"],
                         "scores": outputs["scores"].astype(np.float64)})
            continue
        run.settings = dataclasses.replace(settings, seed=seed)  # head, data order, augmentation
        try:
            train_loader, eval_loader, targets = run.loaders("trainval", "test")
            name = path.stem
            stats, logits, test_score = run.train_and_score(lr, wd, train_loader, eval_loader,
                                                            targets, name, label)
        finally:
            run.settings = settings
        record = {**run.common_fields(), "stage": "seed", "seed": seed, "score": test_score,
                  **interval_fields(run.spec.metric, targets, logits, settings.bootstrap),
                  **calibration_record(logits, targets), "lr": lr, "wd": wd,
                  "weight_decay": stats.weight_decay, "train_split": "trainval",
                  "eval_split": "test", "n_train": len(train_loader.dataset),
                  "n_eval": len(targets), "recipe": recipe, **train_fields(stats),
                  "provenance": run.provenance(("trainval", "test"))}
        if run.context.is_main:
            write_test_outputs(path, targets, logits)
        run.finish_point(name, path, record)
        run.log(f"{label}: test {run.spec.metric} {test_score:.2f}")
        runs.append({"record": record, "targets": targets, "scores": logits})
    return runs


def seeds_summary(metric: str, runs: list[dict], n_resamples: int) -> dict:
    """The mean over seeds as ``score``, each seed's score, a t-interval over seeds, the
    bootstrap interval over test images of the mean, and the mean of the seeds' ECEs."""
    from scipy import stats

    scores = np.array([r["record"]["score"] for r in runs], dtype=np.float64)
    mean = float(scores.mean())
    sd = float(scores.std(ddof=1))
    low = high = mean  # seeds that agree exactly: scipy has no interval of zero width
    if sd > 0.0:
        low, high = stats.t.interval(SEED_INTERVAL_LEVEL, len(scores) - 1, loc=mean,
                                     scale=sd / np.sqrt(len(scores)))
    eces = {key: [r["record"][key] for r in runs]
            for key in ("ece", "ece_temperature_scaled")}
    return {
        "score": mean,
        **interval_fields(metric, runs[0]["targets"], [r["scores"] for r in runs], n_resamples),
        "seed_scores": [{"seed": r["record"]["seed"], "score": r["record"]["score"],
                         "ci": r["record"].get("ci")} for r in runs],
        "seed_interval": {"method": "t", "level": SEED_INTERVAL_LEVEL, "seeds": len(scores),
                          "mean": mean, "sd": sd, "low": float(low), "high": float(high)},
        **{key: None if None in values else float(np.mean(values))
           for key, values in eces.items()},
    }

