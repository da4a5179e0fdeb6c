#!/usr/bin/env python
"""Bootstrap intervals (``transfer/stats/bootstrap.py``): the vectorised resampling against the
plain way (index the test set with each resample and score it with ``transfer.metrics``, one
resample at a time).

Default: the issue's size, a 10,000-image, 100-class test set and 2,000 resamples, for accuracy and
mean per-class accuracy, plus a VOC2007-sized multi-label set (4,952 images, 20 classes) for the
11-point mAP. Both ways score the same resamples; the plain loop is timed on ``--loop-resamples``
of them and scaled to the full count (its cost per resample is constant). Wall and CPU time
(``time.process_time``, which a busy shared machine inflates less) are both printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transfer.stats import metrics  # noqa: E402
from transfer.stats.bootstrap import metric_over_resamples, resample_indices  # noqa: E402


def synthetic_test_set(metric: str, n: int, classes: int, seed: int = 0):
    """Targets and scores of a classifier that is right about 80% of the time (single-label), or
    noisy multi-label scores with ~1.5 positives per image."""
    rng = np.random.default_rng(seed)
    if metric == "voc11_map":
        targets = (rng.random((n, classes)) < 1.5 / classes).astype(np.uint8)
        return targets, targets * 1.5 + rng.normal(size=(n, classes))
    targets = rng.integers(0, classes, n)
    scores = rng.normal(size=(n, classes)).astype(np.float32)
    scores[np.arange(n), targets] += np.where(rng.random(n) < 0.8, 10.0, 0.0)
    return targets, scores


def plain_loop(metric: str, targets, scores, indices: np.ndarray) -> np.ndarray:
    return np.array([metrics.score(metric, targets[row], scores[row]) for row in indices])


def benchmark_bootstrap(
    metric: str, n: int, classes: int, resamples: int, loop_resamples: int
) -> dict:
    targets, scores = synthetic_test_set(metric, n, classes)
    start, cpu = time.perf_counter(), time.process_time()
    indices = resample_indices(targets, metric, resamples, seed=0)
    values = metric_over_resamples(metric, targets, scores, indices)
    vectorised = time.perf_counter() - start
    vectorised_cpu = time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    loop_values = plain_loop(metric, targets, scores, indices[:loop_resamples])
    scale = resamples / loop_resamples
    loop = (time.perf_counter() - start) * scale
    loop_cpu = (time.process_time() - cpu) * scale
    return {
        "metric": metric,
        "shape": [n, classes],
        "resamples": resamples,
        "vectorised_s": vectorised,
        "loop_s": loop,
        "loop_timed_on": loop_resamples,
        "ratio": loop / vectorised,
        "vectorised_cpu_s": vectorised_cpu,
        "loop_cpu_s": loop_cpu,
        "max_difference": float(np.abs(values[:loop_resamples] - loop_values).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--voc-images", type=int, default=4952)
    parser.add_argument("--voc-classes", type=int, default=20)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--loop-resamples", type=int, default=200)
    args = parser.parse_args()
    runs = [
        benchmark_bootstrap(m, args.images, args.classes, args.resamples, args.loop_resamples)
        for m in ("accuracy", "mean_per_class_accuracy")
    ] + [
        benchmark_bootstrap(
            "voc11_map", args.voc_images, args.voc_classes, args.resamples, args.loop_resamples
        )
    ]
    print(
        f"{'metric':<24} {'test set':>10} {'plain loop':>10} {'vectorised':>10} {'ratio':>6}"
        f" {'CPU: loop':>10} {'vectorised':>10}"
    )
    for run in runs:
        shape = "x".join(map(str, run["shape"]))
        print(
            f"{run['metric']:<24} {shape:>10} {run['loop_s']:>9.1f}s {run['vectorised_s']:>9.2f}s"
            f" {run['ratio']:>5.1f}x {run['loop_cpu_s']:>9.1f}s {run['vectorised_cpu_s']:>9.2f}s"
            f"  ({run['resamples']} resamples; loop timed on {run['loop_timed_on']}, max "
            f"difference {run['max_difference']:.1e})"
        )


if __name__ == "__main__":
    main()
