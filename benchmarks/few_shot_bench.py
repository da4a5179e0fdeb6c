#!/usr/bin/env python
"""Few-shot evaluation: the original way (the backbone runs on every episode's images) against
ours (features of the pool once, through the cache, then all episodes on the features).

Both score the same episodes, so their accuracies agree up to float rounding. The original way is
timed on ``--original-episodes`` episodes and scaled to ``--episodes`` (its cost per episode is
constant), because running it in full takes hours on a CPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets import load_split  # noqa: E402
from models import load_backbone  # noqa: E402
from transfer.classifiers.protonet import episode_accuracies, sample_episodes  # noqa: E402
from transfer.features.cache import FeatureCache, cached_features  # noqa: E402


def original_way(backbone, pool, transform, episodes, count: int, device: str) -> np.ndarray:
    """Per episode: load and transform its images, run the backbone, score the prototypes."""
    accuracies = []
    model = backbone.to(device).eval()
    for support, query in zip(episodes.support[:count], episodes.query[:count], strict=True):
        indices = np.concatenate([support, query], axis=1).reshape(-1)
        images = torch.stack([transform(pool.load_image(int(i))) for i in indices]).to(device)
        with torch.no_grad():
            features = model(images).view(support.shape[0], -1, backbone.feature_dim)
        n_support = support.shape[1]
        prototypes = features[:, :n_support].mean(1)
        queries = features[:, n_support:].reshape(-1, backbone.feature_dim)
        predictions = torch.cdist(queries, prototypes).argmin(1)
        truth = torch.arange(support.shape[0], device=device).repeat_interleave(query.shape[1])
        accuracies.append((predictions == truth).double().mean().item() * 100)
    return np.array(accuracies)


def measure(dataset: str = "digits", model: str = "random", image_size: int | None = None,
            episodes: int = 600, original_episodes: int = 20, n_way: int = 5,
            n_support: int = 5, n_query: int = 15, device: str = "cpu",
            data_root: str | None = None, workers: int = 2, pool_size: int | None = None
            ) -> dict:
    """Seconds of the original way (scaled to ``episodes``) and of ours (first run, rerun from
    the cache, the episodes alone), and the accuracies of both. ``pool_size``: only the first
    images of the pool (a smoke run)."""
    backbone = load_backbone(model)
    pool = load_split(dataset, "fewshot", data_root)
    if pool_size is not None:
        pool = pool.subset(range(min(pool_size, len(pool))), pool.name)
    size = image_size or (64 if dataset == "digits" else 224)
    transform = backbone.transform("fewshot", size)
    sampled = sample_episodes(pool.targets, n_way, n_support, n_query, episodes, seed=0)

    start = time.perf_counter()
    original = original_way(backbone, pool, transform, sampled, original_episodes, device)
    original_s = (time.perf_counter() - start) * episodes / original_episodes

    with tempfile.TemporaryDirectory() as cache_dir:
        timings = []
        for _ in range(2):  # first run extracts, the rerun loads the cache
            start = time.perf_counter()
            features, _ = cached_features(
                backbone,
                pool,
                transform,
                FeatureCache(cache_dir),
                device=device,
                workers=workers,
                progress=False,
            )
            ours = episode_accuracies(features, sampled, device)
            timings.append(time.perf_counter() - start)
    start = time.perf_counter()
    episode_accuracies(features, sampled, device)
    episodes_s = time.perf_counter() - start
    return {
        "pool": len(pool),
        "image_size": size,
        "original_s": original_s,
        "first_run_s": timings[0],
        "rerun_s": timings[1],
        "episodes_s": episodes_s,
        "original_accuracy": float(original.mean()),
        "ours_shared_accuracy": float(ours[:original_episodes].mean()),
        "max_episode_difference": float(np.abs(ours[:original_episodes] - original).max()),
        "ours_accuracy": float(ours.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--model", default="random")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--episodes", type=int, default=600)
    parser.add_argument("--original-episodes", type=int, default=20)
    parser.add_argument("--n-way", type=int, default=5)
    parser.add_argument("--n-support", type=int, default=5)
    parser.add_argument("--n-query", type=int, default=15)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    result = measure(args.dataset, args.model, args.image_size, args.episodes,
                     args.original_episodes, args.n_way, args.n_support, args.n_query,
                     args.device, args.data_root, args.workers)

    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    original_s = result["original_s"]
    print(
        f"device: {args.device} ({device_name}), "
        f"{args.dataset} pool of {result['pool']} images at {result['image_size']}px, "
        f"{args.n_way}-way {args.n_support}-shot, {args.episodes} episodes"
    )
    print(
        f"original (backbone per episode): {original_s:9.1f} s "
        f"(timed on {args.original_episodes} episodes, scaled)"
    )
    print(
        f"ours, first run (extract + episodes): {result['first_run_s']:9.1f} s   "
        f"ratio {original_s / result['first_run_s']:6.1f}x"
    )
    print(
        f"ours, rerun (cache + episodes):       {result['rerun_s']:9.1f} s   "
        f"ratio {original_s / result['rerun_s']:6.1f}x"
    )
    print(f"ours, the {args.episodes} episodes alone: {result['episodes_s']:.3f} s")
    print(
        f"accuracy over the shared episodes: original {result['original_accuracy']:.2f}%, ours "
        f"{result['ours_shared_accuracy']:.2f}% (max per-episode difference "
        f"{result['max_episode_difference']:.2g}); ours over all {args.episodes}: "
        f"{result['ours_accuracy']:.2f}%"
    )


if __name__ == "__main__":
    main()
