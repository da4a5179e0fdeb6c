#!/usr/bin/env python
"""Few-shot evaluation (ProtoNet, no training): N-way K-shot episodes on cached features."""

from __future__ import annotations

import argparse
import sys
import time

from datasets import DatasetError, get_dataset_spec, load_split
from models import ModelError, load_backbone
from transfer.arguments import add_feature_arguments, backbone_options
from transfer.cache import FeatureCache, cached_features
from transfer.device import DeviceError
from transfer.precision import check_precision
from transfer.protonet import EpisodeError, episode_accuracies, mean_and_ci95, sample_episodes
from transfer.results import result_path, write_result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "-m",
        "--model",
        default="deepcluster-v2",
        help="model name, .pth file or timm:<architecture>[.<tag>]",
    )
    parser.add_argument("-d", "--dataset", default="cropdiseases", help="dataset name")
    parser.add_argument("--n-way", type=int, default=5, help="classes per episode")
    parser.add_argument(
        "--n-support",
        type=int,
        nargs="+",
        default=[5],
        help="support images per class; several values share one feature pass",
    )
    parser.add_argument("--n-query", type=int, default=15, help="query images per class")
    parser.add_argument("--iter-num", type=int, default=600, help="number of episodes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the episode sampler")
    add_feature_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        spec = get_dataset_spec(args.dataset)
        backbone = load_backbone(
            args.model, args.models_dir, no_norm=args.no_norm, options=backbone_options(args)
        )
        image_size = backbone.image_size(args.image_size, spec.default_image_size)
        pool = load_split(args.dataset, "fewshot", args.data_root)
        check_precision(args.precision, args.device)
    except (DatasetError, ModelError, DeviceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if pool.multilabel:
        print(
            f"error: {args.dataset} is multi-label; few-shot needs single-label classes",
            file=sys.stderr,
        )
        return 2
    transform = backbone.transform("fewshot", image_size)
    start = time.perf_counter()
    features, hit = cached_features(
        backbone,
        pool,
        transform,
        FeatureCache(args.cache_dir),
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
    for n_support in args.n_support:
        start = time.perf_counter()
        try:
            episodes = sample_episodes(
                pool.targets, args.n_way, n_support, args.n_query, args.iter_num, seed=args.seed
            )
        except EpisodeError as error:
            print(f"error: {args.dataset}: {error}", file=sys.stderr)
            return 2
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
            result_path(
                "few_shot",
                backbone.name,
                args.dataset,
                f"{args.n_way}way{n_support}shot",
                args.results_dir,
            ),
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
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
