"""Many-shot finetuning (docs/protocols.md, "Finetuning"): an lr x wd grid trained on train and
scored on val, then the best pair retrained on train+val and scored on test, plus the test ECE of
that model.

Resumable: every finished grid point is one JSON record
``results/finetune/<model>__<dataset>/<point>.json``; a rerun skips them and resumes an
interrupted point from its checkpoint in ``.../ckpt/``. The final record is
``results/finetune/<model>__<dataset>.json`` (``__lr<lr>_wd<wd>`` appended when lr and wd are
given instead of searched), with the test outputs beside it (``<same stem>.npz``, see
``records.outputs``). Only rank 0 reads or writes files, as it goes: finetuning is the one
protocol that writes its own records, so that an interrupted grid resumes.

``seeds`` > 1 repeats the final train+val -> test run with seeds ``seed, seed + 1, ...`` (the grid
is searched once, with ``seed``): each seed's run is a resumable record like a grid point
(``.../final_<point>_seed<s>.json`` and its ``.npz``), and the final record's ``score`` is their
mean, with a t-interval over seeds (training noise) and a bootstrap interval over test images
(test-set noise) of that mean.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np

from transfer.protocols.arguments import (
    add_backbone_arguments,
    add_bootstrap_argument,
    add_location_arguments,
    add_precision_argument,
    add_results_dir_argument,
    backbone_options,
)
from transfer.protocols.finetune_runs import (
    PROTOCOL,
    FinetuneRun,
    FinetuneSettings,
    best_point,
    check_settings,
    finetune_grid,
    point_name,
    read_matching,
    search_grid,
    seed_runs,
    seeds_summary,
    train_fields,
)
from transfer.records.outputs import compact_scores, write_test_outputs
from transfer.records.results import result_path, write_result
from transfer.runtime.distributed import SINGLE_PROCESS, Distributed
from transfer.stats.bootstrap import interval_fields, interval_line
from transfer.stats.calibration import calibration_record


def build_parser() -> argparse.ArgumentParser:
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
    # under torchrun each rank takes cuda:LOCAL_RANK
    add_location_arguments(parser, device=True)
    add_backbone_arguments(parser)
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate: with --wd, skips the search")
    parser.add_argument("--wd", type=float, default=None,
                        help="grid weight decay (the optimiser gets wd / lr), with --lr")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the head, data order and augmentation")
    add_precision_argument(parser, "training and evaluation")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    add_results_dir_argument(parser)
    parser.add_argument("--checkpoint-every", type=int, default=500, metavar="N",
                        help="save a resumable checkpoint every N steps (0: never)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--seeds", type=int, default=1, metavar="N",
                        help="repeat the final train+val -> test run with N seeds (seed, seed+1, "
                             "...; the grid is searched once): the score is their mean, with a "
                             "t-interval over seeds")
    add_bootstrap_argument(parser)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


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


def final_result_path(settings: FinetuneSettings, model: str) -> Path:
    """The final record's file: a given (lr, wd) is filed under its own name; ``model`` is the
    backbone's name (a checkpoint file's stem)."""
    suffix = point_name(settings.lr, settings.wd) if settings.lr is not None else ""
    return result_path(PROTOCOL, model, settings.dataset, suffix, settings.results_dir)


def run_finetune(settings: FinetuneSettings, context: Distributed = SINGLE_PROCESS,
                 device: str = "cpu") -> dict:
    """Run (or finish, or just read back) the protocol; return the final record on every rank."""
    check_settings(settings)
    run = FinetuneRun(settings, context, device)
    given = settings.lr is not None
    if given:
        final_recipe = {**run.recipe, "selection": "given", "lr": settings.lr,
                        "wd": settings.wd}
    else:
        final_recipe = {**run.recipe, "selection": "grid", "grid_size": settings.grid_size}
    final_path = final_result_path(settings, run.backbone.name)
    done = read_matching(final_path, final_recipe, context)
    if done is not None:
        run.log(f"{final_path} exists: nothing to do")
        return done

    if given:
        lr, wd, selection = settings.lr, settings.wd, {"selection": "given"}
    else:
        records = search_grid(run, finetune_grid(settings.grid_size))
        best = best_point(records)
        lr, wd = best["lr"], best["wd"]
        selection = {"selection": "grid", "val_score": best["score"],
                     "grid": [{"lr": r["lr"], "wd": r["wd"], "score": r["score"]}
                              for r in records]}
        run.log(f"best on val: lr={lr:.4g} wd={wd:.4g} ({best['score']:.2f})")

    used = ("trainval", "test") if given else ("train", "val", "trainval", "test")
    if settings.seeds == 1:
        train_loader, eval_loader, test_targets = run.loaders("trainval", "test")
        name = "final_" + point_name(lr, wd)
        stats, logits, test_score = run.train_and_score(lr, wd, train_loader, eval_loader,
                                                        test_targets, name, f"final {name[6:]}")
        result = {"score": test_score, **interval_fields(run.spec.metric, test_targets, logits,
                                                         settings.bootstrap),
                  **calibration_record(logits, test_targets)}
        n_train = len(train_loader.dataset)
        train = {"weight_decay": stats.weight_decay, **train_fields(stats)}
    else:
        final_recipe["seeds"] = settings.seeds
        runs = seed_runs(run, lr, wd, final_recipe)
        test_targets, logits = runs[0]["targets"], runs[0]["scores"]
        result = seeds_summary(run.spec.metric, runs, settings.bootstrap)
        test_score, n_train = result["score"], runs[0]["record"]["n_train"]
        train = {"weight_decay": runs[0]["record"]["weight_decay"]}
    record = {**run.common_fields(), "stage": "final", **result, "lr": lr, "wd": wd,
              **selection, "train_split": "trainval", "eval_split": "test", "n_train": n_train,
              "n_eval": len(test_targets), "recipe": final_recipe, **train,
              "provenance": run.provenance(used)}
    if context.is_main:  # beside the record, for later analysis (and written before it)
        extra = {} if settings.seeds == 1 else {
            "seeds": np.array([r["record"]["seed"] for r in runs]),
            "seed_scores": compact_scores(np.stack([r["scores"] for r in runs]),
                                          test_targets.ndim == 2)}
        write_test_outputs(final_path, test_targets, logits, **extra)
    if settings.seeds == 1:
        run.finish_point(name, final_path, record)
    elif context.is_main:
        write_result(final_path, record)
    if context.is_main and run.checkpoint_dir.is_dir() and not os.listdir(run.checkpoint_dir):
        run.checkpoint_dir.rmdir()
    run.log(f"test {run.spec.metric} {test_score:.2f} -> {final_path}")
    return record



def summary_lines(record: dict[str, Any]) -> list[str]:
    """The test score with the chosen lr and wd, its interval, and the seeds' scores."""
    calibration = ""
    if record.get("ece") is not None:
        calibration = (f", ECE {record['ece']:.2f} "
                       f"(temperature-scaled {record['ece_temperature_scaled']:.2f})")
    lines = [f"{record['model']} on {record['dataset']}: test {record['metric']} "
             f"{record['score']:.2f} with lr={record['lr']:.4g} wd={record['wd']:.4g}"
             f"{calibration}"]
    if line := interval_line(record):
        lines.append(line)
    if "seed_interval" in record:
        seeds = record["seed_interval"]
        lines.append(f"{seeds['seeds']} seeds: " + ", ".join(
            f"{run['seed']}: {run['score']:.2f}" for run in record["seed_scores"])
            + f"; mean {seeds['mean']:.2f}, {100 * seeds['level']:g}% t-interval "
              f"[{seeds['low']:.2f}, {seeds['high']:.2f}]")
    return lines
