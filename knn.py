#!/usr/bin/env python
"""Many-shot weighted kNN evaluation (DINO's protocol) on cached features: k chosen on val."""

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
from transfer.knn import (
    DEFAULT_KS,
    DEFAULT_TEMPERATURE,
    METRIC_SPACES,
    QUERY_CHUNK,
    TRAIN_CHUNK,
)
from transfer.knn_probe import knn_probe
from transfer.results import (
    changed_settings,
    check_results_dir,
    result_path,
    write_result,
    write_test_outputs,
)

# the printed name of each metric; the line keeps one shape for all three
METRIC_NAMES = {
    "accuracy": "accuracy",
    "mean_per_class_accuracy": "mean per-class accuracy",
    "voc11_map": "11-point mAP",
}


# Options that change the numbers: a run that sets one away from its default is filed under a
# name that says so (transfer/results.py), so it never replaces the default-settings result.
RESULT_OPTIONS = {"k": "k", "temperature": "T", "metric_space": "space", "n_per_class": "lowshot",
                  "tries": "tries", "seed": "seed", "image_size": "i", "no_norm": "nonorm",
                  "precision": "precision"}


def result_files(args: argparse.Namespace, model: str) -> list[Path]:
    """The result file of this run, as sweep.py expects it too."""
    settings = changed_settings(vars(args), vars(parse_args([])), RESULT_OPTIONS)
    return [result_path("knn", model, args.dataset, "", args.results_dir, settings)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "-m",
        "--model",
        default="deepcluster-v2",
        help="model name, .pth file or timm:<architecture>[.<tag>]",
    )
    parser.add_argument("-d", "--dataset", default="cifar10", help="dataset name")
    parser.add_argument(
        "--k",
        type=positive_int,
        nargs="+",
        default=list(DEFAULT_KS),
        help="neighbour counts, all from one search; the first best on val is used for test",
    )
    parser.add_argument(
        "--temperature",
        type=positive_float,
        default=DEFAULT_TEMPERATURE,
        help="T of the vote weights exp(similarity / T) (fixed, not searched)",
    )
    parser.add_argument(
        "--metric-space",
        choices=METRIC_SPACES,
        default="cosine",
        help="cosine: dot products of L2-normalised features; l2: minus Euclidean distances",
    )
    parser.add_argument(
        "--n-per-class",
        type=positive_int,
        nargs="*",
        default=[],
        help="also low-shot kNN: this many trainval images per class (e.g. 1 2 5 10), "
        "scored on test",
    )
    parser.add_argument(
        "--tries", type=positive_int, default=5, help="low-shot samples per --n-per-class"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the low-shot sampler")
    parser.add_argument(
        "--query-chunk",
        type=positive_int,
        default=QUERY_CHUNK,
        help="test images per similarity block (memory: query-chunk x train-chunk floats)",
    )
    parser.add_argument(
        "--train-chunk",
        type=positive_int,
        default=TRAIN_CHUNK,
        help="training images per similarity block",
    )
    add_bootstrap_argument(parser)
    add_feature_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_results_dir("knn", args.results_dir)
        backbone = backbone_of(args)
        record = knn_probe(
            backbone,
            args.dataset,
            data_root=args.data_root,
            cache=FeatureCache(args.cache_dir),
            features=feature_options(args),
            ks=args.k,
            temperature=args.temperature,
            metric_space=args.metric_space,
            n_per_class=args.n_per_class,
            tries=args.tries,
            seed=args.seed,
            query_chunk=args.query_chunk,
            train_chunk=args.train_chunk,
            bootstrap=args.bootstrap,
            arguments=vars(args),
        )
    except TransferError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    record["arguments"] = vars(args)
    outputs = record.pop("outputs")
    name = METRIC_NAMES[record["metric"]]
    print(
        f"test {name} per k ({args.metric_space}, T={args.temperature:g}): "
        + ", ".join(f"k={k}: {score:.2f}%" for k, score in record["test_scores"].items())
    )
    for entry in record.get("low_shot", {}).get("results", []):
        print(
            f"low-shot {entry['n_per_class']} per class, k={entry['k']}: "
            f"{entry['mean']:.2f}% +- {entry['ci95']:.2f}% ({args.tries} tries)"
        )
    print(
        f"kNN {name} for {backbone.name} on {args.dataset}: {record['score']:.2f}% "
        f"(k={record['k']})"
    )
    if line := interval_line(record):
        print(line)
    try:  # after the scores: a result that cannot be written is still seen
        path = result_files(args, backbone.name)[0]
        write_test_outputs(path, outputs["targets"], outputs["scores"])  # before the record
        path = write_result(path, record)
    except TransferError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
