#!/usr/bin/env python
"""Many-shot linear evaluation: L-BFGS logistic regression on cached features, C searched on val."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from transfer.arguments import (
    add_bootstrap_argument,
    add_feature_arguments,
    backbone_of,
    feature_options,
    positive_float,
    positive_int,
)
from transfer.bootstrap import interval_line
from transfer.cache import FeatureCache
from transfer.errors import TransferError
from transfer.linear_probe import linear_probe
from transfer.logreg import STRATEGIES
from transfer.plateau import plateau_line
from transfer.results import (
    changed_settings,
    check_results_dir,
    result_path,
    write_result,
    write_test_outputs,
)

# Options that change the numbers: a run that sets one away from its default is filed under a
# name that says so (transfer/results.py), so it never replaces the paper-settings result.
RESULT_OPTIONS = {"C": "C", "wd_values": "w", "image_size": "i", "no_norm": "nonorm",
                  "precision": "precision", "solver": "solver", "strategy": "strategy"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "-m",
        "--model",
        default="deepcluster-v2",
        help="model name, .pth file or timm:<architecture>[.<tag>]",
    )
    parser.add_argument("-d", "--dataset", default="cifar10", help="dataset name")
    parser.add_argument(
        "-w",
        "--wd-values",
        type=positive_int,
        default=45,
        help="number of weight decay values logspace(-6, 5, W) to validate",
    )
    parser.add_argument(
        "-c",
        "--C",
        type=positive_float,
        default=None,
        help="C = 1 / weight decay to use without searching on val",
    )
    parser.add_argument(
        "--solver",
        choices=("sklearn", "torch"),
        default="sklearn",
        help="sklearn: the original's scikit-learn fits, on the CPU; torch: the same fits "
        "(scipy's L-BFGS-B repeated in PyTorch, float64) on --device, e.g. a GPU",
    )
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="chain",
        help="with --solver torch: chain (default) makes the original's capped, warm-started "
        "fits, the paper's protocol; path and batched solve every C to convergence instead, "
        "which is NOT the paper's protocol (another C, another score: see the README)",
    )
    add_bootstrap_argument(parser)
    add_feature_arguments(parser)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.solver == "sklearn" and args.strategy != "chain":
        parser.error(f"--strategy {args.strategy} needs --solver torch (the sklearn solver "
                     "makes the original's chain of fits only)")
    return args


def result_files(args: argparse.Namespace, model: str) -> list[Path]:
    """The result file of this run, as sweep.py expects it too."""
    settings = changed_settings(vars(args), vars(parse_args([])), RESULT_OPTIONS)
    return [result_path("linear", model, args.dataset, "", args.results_dir, settings)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except TransferError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    check_results_dir("linear", args.results_dir)
    backbone = backbone_of(args)
    record = linear_probe(
        backbone,
        args.dataset,
        data_root=args.data_root,
        cache=FeatureCache(args.cache_dir),
        features=feature_options(args),
        C=args.C,
        num_wd=args.wd_values,
        solver=args.solver,
        strategy=args.strategy,
        bootstrap=args.bootstrap,
        arguments=vars(args),
    )
    record["arguments"] = vars(args)
    outputs = record.pop("outputs")
    # the score first: a result that cannot be written is still seen
    print(
        f"Final accuracy for {backbone.name} on {args.dataset}: {record['score']:.2f}% "
        f"using hyperparameter C: {record['C']:.3f}"
    )
    for line in (interval_line(record), plateau_line(record.get("plateau"))):
        if line:
            print(line)
    if record["ece"] is None:  # multi-label, or too few test samples
        print("ECE: n/a, temperature scaled ECE: n/a")
    else:
        print(f"ECE: {record['ece']:.3f}, "
              f"temperature scaled ECE: {record['ece_temperature_scaled']:.3f}")
    path = result_files(args, backbone.name)[0]
    write_test_outputs(path, outputs["targets"], outputs["scores"])  # before the record
    path = write_result(path, record)
    print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
