"""Surface-normal estimation on NYUv2 (docs/protocols.md, "Dense prediction"), the two steps behind
``surface-normal-estimation/train.py`` and ``evaluate.py``.

Model: the dilated ResNet-50 (output stride 8), fully frozen with BN in eval, and the PSP
pyramid-pooling decoder classifying each pixel into the 40 codebook normals; labels downsampled
x8; short side in {300, ..., 600}, long side <= 1000, no flipping (a flip would have to mirror
the normals too). Evaluation at short side 450 over the 654 test images.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from models.backbone import Backbone
from transfer.console import progress
from transfer.protocols.dense.decoders import PPM, DenseModel, class_probabilities
from transfer.protocols.dense.encoder import ResNetStages, load_encoder
from transfer.protocols.dense.normals import (
    NUM_NORMAL_CLASSES,
    AngleErrorSummary,
    angle_errors,
    load_codebook,
    probabilities_to_normals,
)
from transfer.protocols.dense.nyuv2 import read_split, split_file
from transfer.protocols.dense.provenance import dense_provenance
from transfer.protocols.dense.samples import DenseDataError, EvalImages, Geometry, TrainBatches
from transfer.protocols.dense.train_loop import (
    SINGLE_PROCESS,
    Schedule,
    latest_checkpoint,
    train_dense,
)
from transfer.runtime.checkpoint import read_checkpoint
from transfer.runtime.distributed import Distributed

TRAIN_SCALES = (300, 375, 450, 525, 600)
TEST_SCALES = (450,)
MAX_SIZE = 1000
OUTPUT_STRIDE = 8


@dataclass(frozen=True)
class NormalsRecipe:
    """Defaults = the original ``train_finetune_models.sh`` (90 x 150 iterations of 2 images)."""

    epoch_iters: int = 90
    num_epoch: int = 150
    batch_per_gpu: int = 2
    lr: float = 0.02
    lr_pow: float = 0.9
    momentum: float = 0.9
    weight_decay: float = 1e-4
    scales: tuple[int, ...] = TRAIN_SCALES
    max_size: int = MAX_SIZE
    seed: int = 304


def build_model(encoder: ResNetStages) -> DenseModel:
    return DenseModel(encoder, PPM(num_class=NUM_NORMAL_CLASSES))


def pretrained_model(weights: str | Path,
                     models_dir: str | Path | None = None) -> tuple[DenseModel, Backbone]:
    """PPM over the dilated, frozen encoder holding ``weights`` (loaded strictly)."""
    encoder, backbone = load_encoder(weights, models_dir, dilated=True, frozen=True)
    return build_model(encoder), backbone


def train_normals(weights: str | Path, ckpt_dir: str | Path, nyu_root: str | Path,
                  recipe: NormalsRecipe, device: str, context: Distributed = SINGLE_PROCESS,
                  models_dir: str | Path | None = None, workers: int = 0) -> Path:
    """Train the decoder on the 795 training images; returns the final checkpoint."""
    torch.manual_seed(recipe.seed)
    model, backbone = pretrained_model(weights, models_dir)
    dataset = TrainBatches(
        read_split(nyu_root, "train"),
        Geometry(recipe.scales, recipe.max_size, OUTPUT_STRIDE, OUTPUT_STRIDE),
        batch_per_gpu=recipe.batch_per_gpu, encoding="nyuv2", normalize=backbone.normalize,
        random_flip=False, seed=recipe.seed)
    schedule = Schedule(recipe.epoch_iters, recipe.num_epoch, recipe.lr, recipe.lr_pow,
                        recipe.momentum, recipe.weight_decay)
    meta = {"task": "normals", "model": backbone.name, "normalize": backbone.normalize,
            "weights_identity": backbone.identity, "recipe": asdict(recipe),
            "world_size": context.world_size}
    return train_dense(model, dataset, schedule, ckpt_dir, meta, device, context, workers,
                       seed=recipe.seed)


def load_trained(ckpt_dir: str | Path) -> tuple[DenseModel, dict[str, Any]]:
    """The newest checkpoint of ``ckpt_dir`` as a model in eval mode, and its checkpoint dict."""
    path = latest_checkpoint(ckpt_dir)
    if path is None:
        raise DenseDataError(f"no checkpoint (epoch_<n>.pth) in {ckpt_dir}; train first with "
                             "scripts/train_finetune_models.sh")
    state = read_checkpoint(path)
    if state.get("meta", {}).get("task") != "normals":
        raise DenseDataError(f"{path} is not a surface-normals checkpoint")
    model = build_model(ResNetStages(dilated=True, frozen=True))
    model.load_state_dict(state["model"], strict=True)
    state["path"] = str(path)
    return model.eval(), state


@torch.no_grad()
def evaluate_normals(model: DenseModel, nyu_root: str | Path, normalize: bool, device: str,
                     scales: tuple[int, ...] = TEST_SCALES, max_size: int = MAX_SIZE,
                     codebook: np.ndarray | None = None, workers: int = 0) -> dict[str, float]:
    """Angle metrics over all valid pixels of the test split (single process)."""
    codebook = load_codebook() if codebook is None else codebook
    dataset = EvalImages(read_split(nyu_root, "test"), Geometry(scales, max_size, OUTPUT_STRIDE),
                         encoding="nyuv2", normalize=normalize)
    loader = DataLoader(dataset, batch_size=None, num_workers=workers)
    model.to(device).eval()
    summary = AngleErrorSummary()
    for item in progress(loader, desc="evaluate normals"):
        target, valid = np.asarray(item["normals"]), np.asarray(item["valid"])
        if target.shape[:2] != tuple(item["label"].shape):
            raise DenseDataError(f"image {item['name']}: normals {target.shape[:2]} and image "
                                 f"{tuple(item['label'].shape)} differ in size")
        images = [image.to(device) for image in item["images"]]
        probs = class_probabilities(model, images, target.shape[:2])[0].cpu().double().numpy()
        summary.update(angle_errors(probabilities_to_normals(probs, codebook), target, valid))
    return summary.result()


def normals_record(state: dict[str, Any], metrics: dict[str, Any], nyu_root: Path,
                   scales: tuple[int, ...], max_size: int, options: dict[str, Any],
                   device: str) -> dict[str, Any]:
    """The result record of an evaluation (``results/normals/<model>.json``)."""
    meta = state["meta"]
    transform_id = (f"normals-scales{'_'.join(map(str, scales))}-max{max_size}-"
                    f"{'norm' if meta['normalize'] else 'nonorm'}")
    return {
        "protocol": "normals", "model": meta["model"], "dataset": "nyuv2",
        "metric": "median_angle_error", "score": metrics["median_angle_error"],
        "score_unit": "degrees (lower is better)", **metrics, "test_scales": list(scales),
        "checkpoint": state["path"], "iterations": state["iteration"], "recipe": meta["recipe"],
        "weights_identity": meta["weights_identity"],
        "provenance": dense_provenance(
            state, {split: split_file(nyu_root, split) for split in ("train", "test")},
            transform_id, {**options, "recipe": meta["recipe"]}, device),
    }


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """The training recipe's options, defaulting to the paper's schedule (``NormalsRecipe``)."""
    d = NormalsRecipe()
    parser.add_argument("--epoch-iters", type=int, default=d.epoch_iters)
    parser.add_argument("--num-epoch", type=int, default=d.num_epoch)
    parser.add_argument("--batch-size-per-gpu", type=int, default=d.batch_per_gpu)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--lr-pow", type=float, default=d.lr_pow)
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--scales", type=int, nargs="+", default=list(d.scales),
                        help="training short sides (default: %(default)s)")
    parser.add_argument("--max-size", type=int, default=d.max_size)
    parser.add_argument("--seed", type=int, default=d.seed)


def recipe_of(args: argparse.Namespace) -> NormalsRecipe:
    return NormalsRecipe(
        epoch_iters=args.epoch_iters, num_epoch=args.num_epoch,
        batch_per_gpu=args.batch_size_per_gpu, lr=args.lr, lr_pow=args.lr_pow,
        weight_decay=args.weight_decay, scales=tuple(args.scales), max_size=args.max_size,
        seed=args.seed)
