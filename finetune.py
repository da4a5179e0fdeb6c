#!/usr/bin/env python
"""Evaluate a pretrained model by finetuning it on a many-shot dataset (SPEC section 5).

    python finetune.py -m deepcluster-v2 -d cifar10            # the paper's 20-point grid
    python finetune.py -m supervised -d pets --lr 0.01 --wd 0  # skip the search
    python finetune.py -m byol -d pets --seeds 3               # final run with 3 seeds
    torchrun --nproc_per_node 8 finetune.py -m swav -d food --precision bf16
    python finetune.py -m timm:convnext_tiny.fb_in22k -d pets  # any timm model

Finished grid points are kept, so rerunning an interrupted command resumes it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from transfer.arguments import (
    add_backbone_arguments,
    add_bootstrap_argument,
    add_location_arguments,
    add_precision_argument,
    backbone_options,
    default_device,
)
from transfer.bootstrap import interval_line
from transfer.device import device_argument
from transfer.distributed import init_distributed, shutdown
from transfer.errors import TransferError
from transfer.finetune import FinetuneSettings, final_result_path, run_finetune
from transfer.results import check_results_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Evaluate a pretrained model by finetuning: an lr x wd grid on train -> val, "
                    "then the best pair retrained on train+val -> test.")
    parser.add_argument("-m", "--model", default="deepcluster-v2",
                        help="model name (see download_and_prepare_models.py), 'random', a "
                             "common-format .pth file, or timm:<architecture>[.<tag>]")
    parser.add_argument("-d", "--dataset", default="cifar10", help="many-shot dataset name")
    parser.add_argument("-b", "--batch-size", type=int, default=64,
                        help="global mini-batch size (split over torchrun processes)")
    parser.add_argument("-i", "--image-size", type=int, default=None,
                        help="input size (default: a timm model's native size, else the "
                             "dataset's: 224 for the paper's sets)")
    parser.add_argument("-w", "--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="data loading processes per rank")
    parser.add_argument("-g", "--grid-size", type=int, default=4,
                        help="number of learning rates (and of non-zero weight decays) in the "
                             "grid: g * (g + 1) runs, 20 for the paper's 4")
    parser.add_argument("--steps", type=int, default=5000, help="finetuning steps per run")
    parser.add_argument("--no-da", action="store_true",
                        help="train on the evaluation transform (no augmentation)")
    parser.add_argument("-n", "--no-norm", action="store_true",
                        help="no ImageNet normalisation (implied for simclr-v1/-v2)")
    parser.add_argument("--device", type=device_argument, default=default_device(),
                        help="cuda, cuda:N or cpu (torchrun: each rank takes cuda:LOCAL_RANK)")
    add_location_arguments(parser)
    add_backbone_arguments(parser)
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate: with --wd, skips the search")
    parser.add_argument("--wd", type=float, default=None,
                        help="grid weight decay (the optimiser gets wd / lr), with --lr")
    parser.add_argument("--seed", type=int, default=0, help="seed of the head, data order and "
                                                            "augmentation")
    add_precision_argument(parser, "training and evaluation")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--results-dir", default=None,
                        help="where results/ go (default: $SSL_TRANSFER_RESULTS, else results/)")
    parser.add_argument("--checkpoint-every", type=int, default=500, metavar="N",
                        help="save a resumable checkpoint every N steps (0: never)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--seeds", type=int, default=1, metavar="N",
                        help="repeat the final train+val -> test run with N seeds (seed, seed+1, "
                             "...; the grid is searched once): the score is their mean, with a "
                             "t-interval over seeds")
    add_bootstrap_argument(parser)
    return parser.parse_args(argv)


def settings_of(args: argparse.Namespace) -> FinetuneSettings:
    return FinetuneSettings(
        model=args.model, dataset=args.dataset, batch_size=args.batch_size,
        image_size=args.image_size, steps=args.steps, grid_size=args.grid_size,
        data_augmentation=not args.no_da, no_norm=args.no_norm, lr=args.lr, wd=args.wd,
        seed=args.seed, precision=args.precision, compile=args.compile,
        checkpoint_every=args.checkpoint_every, workers=args.workers, data_root=args.data_root,
        models_dir=args.models_dir, results_dir=args.results_dir, progress=not args.no_progress,
        backbone=backbone_options(args), bootstrap=args.bootstrap, seeds=args.seeds)


def result_files(args: argparse.Namespace, model: str) -> list[Path]:
    """The final result file of this run, as sweep.py expects it too."""
    return [final_result_path(settings_of(args), model)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_of(args)
    try:
        context, device = init_distributed(args.device)
    except TransferError as error:
        print(f"finetune.py: error: {error}", file=sys.stderr)
        return 2
    try:
        # before any training: a result that cannot be saved fails now (on every rank, so that
        # none waits for the others in a collective)
        check_results_dir("finetune", args.results_dir)
        record = run_finetune(settings, context, device)
    except TransferError as error:
        print(f"finetune.py: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if context.is_main:
            print("\ninterrupted: finished grid points and the last checkpoint are kept; "
                  "rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        shutdown(context)
    if context.is_main:
        calibration = ""
        if record.get("ece") is not None:
            calibration = (f", ECE {record['ece']:.2f} "
                           f"(temperature-scaled {record['ece_temperature_scaled']:.2f})")
        print(f"{record['model']} on {record['dataset']}: test {record['metric']} "
              f"{record['score']:.2f} with lr={record['lr']:.4g} wd={record['wd']:.4g}"
              f"{calibration}")
        if line := interval_line(record):
            print(line)
        if "seed_interval" in record:
            seeds = record["seed_interval"]
            print(f"{seeds['seeds']} seeds: " + ", ".join(
                f"{run['seed']}: {run['score']:.2f}" for run in record["seed_scores"])
                + f"; mean {seeds['mean']:.2f}, {100 * seeds['level']:g}% t-interval "
                  f"[{seeds['low']:.2f}, {seeds['high']:.2f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
