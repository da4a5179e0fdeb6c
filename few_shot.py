#!/usr/bin/env python
"""Few-shot evaluation (ProtoNet, no training): N-way K-shot episodes on cached features."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from datasets import get_dataset_spec, load_split
from models import load_backbone
from transfer.arguments import (
    add_feature_arguments,
    backbone_options,
    int_at_least,
    positive_int,
)
from transfer.cache import FeatureCache, cached_features
from transfer.errors import TransferError
from transfer.precision import check_precision
from transfer.protonet import EpisodeError, episode_accuracies, mean_and_ci95, sample_episodes
from transfer.results import (
    changed_settings,
    check_results_dir,
    provenance,
    result_path,
    write_result,
)

# Options that change the numbers besides the shots and ways the file name always holds: a run
# that sets one away from its default is filed under a name that says so (transfer/results.py).
RESULT_OPTIONS = {"n_query": "q", "iter_num": "episodes", "seed": "seed", "image_size": "i",
                  "no_norm": "nonorm"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "-m",
        "--model",
        default="deepcluster-v2",
        help="model name, .pth file or timm:<architecture>[.<tag>]",
    )
    parser.add_argument("-d", "--dataset", default="cropdiseases", help="dataset name")
    parser.add_argument("--n-way", type=int_at_least(2), default=5, help="classes per episode")
    parser.add_argument(
        "--n-support",
        type=positive_int,
        nargs="+",
        default=[5],
        help="support images per class; several values share one feature pass",
    )
    parser.add_argument("--n-query", type=positive_int, default=15, help="query images per class")
    parser.add_argument("--iter-num", type=positive_int, default=600, help="number of episodes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the episode sampler")
    add_feature_arguments(parser)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def result_files(args: argparse.Namespace, model: str) -> list[Path]:
    """The result file of each support size, as sweep.py expects them too."""
    settings = changed_settings(vars(args), vars(parse_args([])), RESULT_OPTIONS)
    return [
        result_path("few_shot", model, args.dataset, f"{args.n_way}way{n_support}shot",
                    args.results_dir, settings)
        for n_support in args.n_support
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except TransferError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    spec = get_dataset_spec(args.dataset)
    check_results_dir("few_shot", args.results_dir)
    backbone = load_backbone(
        args.model, args.models_dir, no_norm=args.no_norm, options=backbone_options(args)
    )
    image_size = backbone.image_size(args.image_size, spec.default_image_size)
    pool = load_split(args.dataset, "fewshot", args.data_root)
    check_precision(args.precision, args.device)
    if pool.multilabel:
        raise EpisodeError(f"{args.dataset} is multi-label; few-shot needs single-label classes")
    cache = FeatureCache(args.cache_dir)
    transform = backbone.transform("fewshot", image_size)
    start = time.perf_counter()
    features, hit = cached_features(
        backbone,
        pool,
        transform,
        cache,
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
        precision=args.precision,
    )
    feature_seconds = time.perf_counter() - start
    print(
        f"{'loaded cached' if hit else 'computed'} features of {len(pool)} images "
        f"in {feature_seconds:.1f}s"
    )
    paths = result_files(args, backbone.name)
    for n_support, path in zip(args.n_support, paths, strict=True):
        start = time.perf_counter()
        try:
            episodes = sample_episodes(
                pool.targets, args.n_way, n_support, args.n_query, args.iter_num, seed=args.seed
            )
        except EpisodeError as error:
            raise EpisodeError(f"{args.dataset}: {error}") from None
        if episodes.skipped_classes:
            names = [pool.classes[c] for c in episodes.skipped_classes]
            print(
                f"warning: {len(names)} class(es) with fewer than {n_support + args.n_query} "
                f"images left out: {', '.join(names[:10])}"
            )
        accuracy, ci95 = mean_and_ci95(episode_accuracies(features, episodes, args.device))
        episode_seconds = time.perf_counter() - start
        print(
            f"{args.n_way}-way {n_support}-shot, {args.iter_num} episodes: "
            f"Test Acc = {accuracy:.2f}% +- {ci95:.2f}%"
        )
        write_result(
            path,
            {
                "protocol": "few_shot",
                "model": backbone.name,
                "dataset": args.dataset,
                "metric": "accuracy",
                "score": accuracy,
                "accuracy": accuracy,
                "ci95": ci95,
                "n_way": args.n_way,
                "n_support": n_support,
                "n_query": args.n_query,
                "episodes": args.iter_num,
                "seed": args.seed,
                "image_size": image_size,
                "normalize": backbone.normalize,
                "transform_id": transform.transform_id,
                "backbone": backbone.describe(),
                "features_cached": hit,
                "timings": {"features_s": feature_seconds, "episodes_s": episode_seconds},
                "arguments": vars(args),
                "provenance": provenance(
                    backbone.identity,
                    {"fewshot": pool},
                    {"fewshot": transform.transform_id},
                    {**vars(args), "n_support": n_support},
                    args.device,
                ),
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
