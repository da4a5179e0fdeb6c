"""The few-shot protocol (ProtoNet, no training) on cached features: N-way K-shot episodes drawn
from a dataset's few-shot pool, each scored by its prototypes (docs/protocols.md, "Few-shot").

``few_shot.py`` is ``parse_args`` -> ``run`` -> ``summary_lines`` -> ``write_run``, one record per
support size; the support sizes share one feature pass.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from datasets import get_dataset_spec, load_split
from transfer.classifiers.protonet import EpisodeError, episode_accuracies, sample_episodes
from transfer.features.cache import FeatureCache, cached_features
from transfer.protocols.arguments import (
    add_feature_arguments,
    add_model_arguments,
    backbone_of,
    int_at_least,
    positive_int,
)
from transfer.records.provenance import provenance
from transfer.records.results import RunResult, check_results_dir, run_result_paths
from transfer.runtime.precision import check_precision
from transfer.stats.metrics import mean_and_ci95

logger = logging.getLogger(__name__)

# Options that change the numbers besides the shots and ways the file name always holds: a run
# that sets one away from its default is filed under a name that says so.
RESULT_OPTIONS = {"n_query": "q", "iter_num": "episodes", "seed": "seed", "image_size": "i",
                  "no_norm": "nonorm"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Few-shot evaluation (ProtoNet, no training): "
                                     "N-way K-shot episodes on cached features.")
    add_model_arguments(parser, dataset="cropdiseases")
    parser.add_argument("--n-way", type=int_at_least(2), default=5, help="classes per episode")
    parser.add_argument("--n-support", type=positive_int, nargs="+", default=[5],
                        help="support images per class; several values share one feature pass")
    parser.add_argument("--n-query", type=positive_int, default=15, help="query images per class")
    parser.add_argument("--iter-num", type=positive_int, default=600, help="number of episodes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the episode sampler")
    add_feature_arguments(parser)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def result_files(args: argparse.Namespace, model: str) -> list[Path]:
    """The result file of each support size, as sweep.py expects them too."""
    return run_result_paths("few_shot", model, args, parse_args([]), RESULT_OPTIONS,
                            [f"{args.n_way}way{n_support}shot" for n_support in args.n_support])


def run(args: argparse.Namespace) -> list[RunResult]:
    """One record per ``--n-support`` value, in that order (the order of ``result_files``)."""
    spec = get_dataset_spec(args.dataset)
    check_results_dir("few_shot", args.results_dir)
    backbone = backbone_of(args)
    image_size = backbone.image_size(args.image_size, spec.default_image_size)
    pool = load_split(args.dataset, "fewshot", args.data_root)
    check_precision(args.precision, args.device)
    if pool.multilabel:
        raise EpisodeError(f"{args.dataset} is multi-label; few-shot needs single-label classes")
    transform = backbone.transform("fewshot", image_size)
    start = time.perf_counter()
    features, hit = cached_features(
        backbone, pool, transform, FeatureCache(args.cache_dir), batch_size=args.batch_size,
        device=args.device, workers=args.workers, precision=args.precision)
    feature_seconds = time.perf_counter() - start
    logger.info("%s features of %d images in %.1fs", "loaded cached" if hit else "computed",
                len(pool), feature_seconds)
    results = []
    for n_support in args.n_support:
        start = time.perf_counter()
        try:
            episodes = sample_episodes(pool.targets, args.n_way, n_support, args.n_query,
                                       args.iter_num, seed=args.seed)
        except EpisodeError as error:
            raise EpisodeError(f"{args.dataset}: {error}") from error
        if episodes.skipped_classes:
            names = [pool.classes[c] for c in episodes.skipped_classes]
            logger.warning("%d class(es) with fewer than %d images left out: %s", len(names),
                           n_support + args.n_query, ", ".join(names[:10]))
        accuracy, ci95 = mean_and_ci95(episode_accuracies(features, episodes, args.device))
        results.append(RunResult({
            "protocol": "few_shot", "model": backbone.name, "dataset": args.dataset,
            "metric": "accuracy", "score": accuracy, "accuracy": accuracy, "ci95": ci95,
            "n_way": args.n_way, "n_support": n_support, "n_query": args.n_query,
            "episodes": args.iter_num, "seed": args.seed, "image_size": image_size,
            "normalize": backbone.normalize, "transform_id": transform.transform_id,
            "backbone": backbone.describe(), "features_cached": hit,
            "timings": {"features_s": feature_seconds,
                        "episodes_s": time.perf_counter() - start},
            "arguments": vars(args),
            "provenance": provenance(
                backbone.identity, {"fewshot": pool}, {"fewshot": transform.transform_id},
                {**vars(args), "n_support": n_support}, args.device),
        }))
    return results


def summary_lines(record: dict[str, Any]) -> list[str]:
    """The original's line: mean episode accuracy and its 95% interval."""
    return [f"{record['n_way']}-way {record['n_support']}-shot, {record['episodes']} episodes: "
            f"Test Acc = {record['accuracy']:.2f}% +- {record['ci95']:.2f}%"]
