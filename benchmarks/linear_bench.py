#!/usr/bin/env python
"""The linear protocol end to end: the original's way against ours, in one process.

- extraction: the original ran the backbone with autograd on, contiguous NCHW, and extracted
  train and val and then trainval again (features twice); ours extracts trainval and test once
  under inference_mode in channels_last, then reruns load the cache;
- C search: scikit-learn's grid as the original (``sklearn``) against the torch solver's chain
  (the same fits in PyTorch) and, for reference, its converged path, on the same features, via
  benchmarks/logreg_bench.py. End to end, ours is extraction (or the cache) plus the chain.

    python benchmarks/linear_bench.py                        # digits demo at 64 px, CPU
    python benchmarks/linear_bench.py --image-size 224       # the paper's resolution
    python benchmarks/linear_bench.py --dataset cifar10 --model supervised --device cuda
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.logreg_bench import benchmark_solvers, limit_threads  # noqa: E402
from datasets import ImageDataset, get_dataset_spec, load_split  # noqa: E402
from models import load_backbone  # noqa: E402
from transfer.features.cache import FeatureCache, cached_features  # noqa: E402
from transfer.features.many_shot import features_of_subset  # noqa: E402


def original_loop(model, batches, device) -> None:
    """The original's feature pass over ``(images, _)`` batches: autograd on, NCHW, a blocking
    copy of every batch's features to the host."""
    for images, _ in batches:
        model(images.to(device)).cpu().detach().numpy()


def original_extraction(backbone, splits, transform, batch_size, device, workers) -> float:
    """Seconds to extract train, val, trainval and test the original's way."""
    model = backbone.to(device).eval()
    start = time.perf_counter()
    for name in ("train", "val", "trainval", "test"):
        loader = DataLoader(
            ImageDataset(splits[name], transform), batch_size=batch_size, num_workers=workers
        )
        original_loop(model, loader, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--model", default="random")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--sensitivity", action="store_true",
                        help="also run scikit-learn on column-permuted features (noise floor)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for everything (BLAS, OpenMP, torch); default: all")
    args = parser.parse_args()
    if args.threads is not None:
        limit_threads(args.threads)

    spec = get_dataset_spec(args.dataset)
    backbone = load_backbone(args.model)
    size = backbone.image_size(args.image_size, spec.default_image_size)
    transform = backbone.transform("eval", size)
    splits = {
        name: load_split(args.dataset, name, args.data_root)
        for name in ("train", "val", "trainval", "test")
    }
    original_images = sum(len(splits[name]) for name in ("train", "val", "trainval", "test"))
    original_s = original_extraction(
        backbone, splits, transform, args.batch_size, args.device, args.workers
    )

    timings = []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(2):  # the first run extracts, the rerun loads the cache
            start = time.perf_counter()
            features = {
                name: cached_features(
                    backbone,
                    splits[name],
                    transform,
                    FeatureCache(folder),
                    batch_size=args.batch_size,
                    device=args.device,
                    workers=args.workers,
                    progress=False,
                )[0]
                for name in ("trainval", "test")
            }
            timings.append(time.perf_counter() - start)
    ours_images = len(splits["trainval"]) + len(splits["test"])
    data = {
        name: (
            features_of_subset(splits[name], splits["trainval"], features["trainval"]).numpy(),
            splits[name].targets,
        )
        for name in ("train", "val")
    }
    data["test"] = (features["test"].numpy(), splits["test"].targets)
    solvers = benchmark_solvers(
        data=data, metric=spec.metric, device=args.device, strategies=("chain", "path"),
        sensitivity=args.sensitivity,
    )
    sk, ours, converged = solvers["sklearn"], solvers["torch_chain"], solvers["torch_path"]
    sk_s = sk["grid_seconds"] + sk["refit_seconds"]
    ours_solver_s = ours["grid_seconds"] + ours["refit_seconds"]

    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(
        f"device: {args.device} ({device}, {torch.get_num_threads()} threads), {args.dataset} "
        f"at {size}px, model {args.model}"
    )
    print(
        f"extraction, original (autograd, features twice): {original_s:8.1f} s for "
        f"{original_images} images = {original_images / original_s:7.1f} img/s"
    )
    print(
        f"extraction, ours first run:                      {timings[0]:8.1f} s for "
        f"{ours_images} images = {ours_images / timings[0]:7.1f} img/s   "
        f"images/s ratio {ours_images / timings[0] / (original_images / original_s):.2f}x, "
        f"time ratio {original_s / timings[0]:.2f}x"
    )
    print(f"extraction, ours rerun (cache):                  {timings[1]:8.3f} s")
    runs = [("torch chain", ours), ("torch converged path", converged)]
    if args.sensitivity:
        runs.insert(0, ("sklearn, columns permuted", solvers["sklearn_permuted"]))
    for label, run in runs:
        run_s = run["grid_seconds"] + run["refit_seconds"]
        print(
            f"C search + refit: sklearn {sk_s:.1f} s (C={sk['best_C']:.4g} #{sk['best_index']}, "
            f"test {sk['test_score']:.2f}) vs {label} {run_s:.1f} s "
            f"(C={run['best_C']:.4g} #{run['best_index']}, test {run['test_score']:.2f}): "
            f"{sk_s / run_s:.2f}x, {run['grid_steps_from_sklearn_C']} grid steps apart, "
            f"test {run['test_diff_vs_sklearn']:+.2f}, val curve within "
            f"{run['max_val_diff_vs_sklearn']:.2f}"
        )
    original_total = original_s + sk_s
    for label, seconds in (
        ("first run", timings[0] + ours_solver_s),
        ("rerun", timings[1] + ours_solver_s),
    ):
        print(
            f"end to end, original {original_total:.1f} s vs ours {label} {seconds:.1f} s: "
            f"{original_total / seconds:.2f}x"
        )


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
