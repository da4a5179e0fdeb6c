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
from transfer.cache import FeatureCache, cached_features  # noqa: E402
from transfer.protonet import episode_accuracies, sample_episodes  # noqa: E402


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

    backbone = load_backbone(args.model)
    pool = load_split(args.dataset, "fewshot", args.data_root)
    size = args.image_size or (64 if args.dataset == "digits" else 224)
    transform = backbone.transform("fewshot", size)
    episodes = sample_episodes(
        pool.targets, args.n_way, args.n_support, args.n_query, args.episodes, seed=0
    )

    start = time.perf_counter()
    original = original_way(
        backbone, pool, transform, episodes, args.original_episodes, args.device
    )
    original_s = (time.perf_counter() - start) * args.episodes / args.original_episodes

    with tempfile.TemporaryDirectory() as cache_dir:
        timings = []
        for _ in range(2):  # first run extracts, the rerun loads the cache
            start = time.perf_counter()
            features, _ = cached_features(
                backbone,
                pool,
                transform,
                FeatureCache(cache_dir),
                device=args.device,
                workers=args.workers,
            )
            ours = episode_accuracies(features, episodes, args.device)
            timings.append(time.perf_counter() - start)
    start = time.perf_counter()
    episode_accuracies(features, episodes, args.device)
    episodes_s = time.perf_counter() - start

    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    agree = np.abs(ours[: args.original_episodes] - original).max()
    print(
        f"device: {args.device} ({device_name}), "
        f"{args.dataset} pool of {len(pool)} images at {size}px, {args.n_way}-way "
        f"{args.n_support}-shot, {args.episodes} episodes"
    )
    print(
        f"original (backbone per episode): {original_s:9.1f} s "
        f"(timed on {args.original_episodes} episodes, scaled)"
    )
    print(
        f"ours, first run (extract + episodes): {timings[0]:9.1f} s   "
        f"ratio {original_s / timings[0]:6.1f}x"
    )
    print(
        f"ours, rerun (cache + episodes):       {timings[1]:9.1f} s   "
        f"ratio {original_s / timings[1]:6.1f}x"
    )
    print(f"ours, the {args.episodes} episodes alone: {episodes_s:.3f} s")
    print(
        f"accuracy over the shared episodes: original {original.mean():.2f}%, ours "
        f"{ours[: args.original_episodes].mean():.2f}% (max per-episode difference {agree:.2g}); "
        f"ours over all {args.episodes}: {ours.mean():.2f}%"
    )


if __name__ == "__main__":
    main()
