#!/usr/bin/env python
"""The sklearn C search beside a busy process: time alone, time beside the load, their ratio.

Issue 16: on a 2-core laptop the digits grid took 21 s alone and 349 s while one other job ran
(``sweep.py --jobs 2``): multi-threaded BLAS / OpenMP calls on small matrices wait for workers
that the other process has pushed off the cores. The solver now runs such fits on one thread
(``transfer/classifiers/logreg/sklearn_chain.py``, ``THREADED_WORK``). The baseline, measured in the
same run, is the previous policy: numpy's BLAS and scikit-learn's OpenMP keep all their threads
(only scipy's own BLAS limited). The load is this script's own: ``--busy`` processes spinning a
pure-Python loop, one core each, so the figure does not depend on what else the machine runs (other
users of the machine add to both columns alike, but they are not controlled: say so).

    python benchmarks/contention_bench.py                 # digits-sized: 960 x 2048, 10 classes
    python benchmarks/contention_bench.py --grid 15 --busy 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.logreg_bench import make_realistic_features  # noqa: E402
from transfer.classifiers import logreg  # noqa: E402
from transfer.classifiers.logreg import sklearn_chain  # noqa: E402

POLICIES = {"kept threads (before)": 0.0, "one thread below THREADED_WORK (ours)": None}


def _spin() -> None:
    """The controlled load: one core kept busy by pure Python (no BLAS, no threads)."""
    while True:
        pass


def time_grid(data, Cs, threaded_work: float | None) -> tuple[float, int]:
    """Seconds of the sklearn grid and its chosen index, with ``THREADED_WORK`` set (None: the
    solver's own value)."""
    (x, y), (vx, vy) = data["train"], data["val"]
    saved = sklearn_chain.THREADED_WORK
    if threaded_work is not None:
        sklearn_chain.THREADED_WORK = threaded_work
    try:
        start = time.perf_counter()
        grid = logreg.fit_logreg_grid(x, y, vx, vy, Cs, "accuracy", progress=False)
        return time.perf_counter() - start, grid.best_index
    finally:
        sklearn_chain.THREADED_WORK = saved


def benchmark(data, Cs, busy: int) -> dict:
    """{policy: {alone_s, busy_s, ratio, best_index}}; the busy processes run only during the
    "busy" timings and are stopped after them."""
    report = {}
    for name, threaded_work in POLICIES.items():
        alone, index = time_grid(data, Cs, threaded_work)
        context = multiprocessing.get_context("spawn")
        load = [context.Process(target=_spin, daemon=True) for _ in range(busy)]
        for process in load:
            process.start()
        try:
            loaded, loaded_index = time_grid(data, Cs, threaded_work)
        finally:
            for process in load:
                process.terminate()
                process.join()
        report[name] = {"alone_s": alone, "busy_s": loaded, "ratio": loaded / alone,
                        "best_index": index, "best_index_busy": loaded_index}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=960)
    parser.add_argument("--n-val", type=int, default=240)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--grid", type=int, default=45, help="number of C values (paper: 45)")
    parser.add_argument("--busy", type=int, default=1, help="busy processes beside the grid")
    args = parser.parse_args()
    data = make_realistic_features(n_train=args.n_train, n_val=args.n_val, n_test=10,
                                   dim=args.dim, num_classes=args.classes, separation=0.2)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.n_train} x {args.dim}, {args.classes} classes, {args.grid} C values; "
          f"{cores} cores, load average {load:.1f} before the run; {args.busy} busy process(es)")
    report = benchmark(data, logreg.default_C_grid(args.grid), args.busy)
    for name, row in report.items():
        print(f"{name:>40}: alone {row['alone_s']:7.1f} s, busy {row['busy_s']:7.1f} s, "
              f"busy / alone {row['ratio']:5.2f}x (C #{row['best_index']}, "
              f"#{row['best_index_busy']} busy)")
    before, ours = report.values()
    print(f"{'beside the load, ours vs before':>40}: {before['busy_s'] / ours['busy_s']:.1f}x "
          "faster")


if __name__ == "__main__":
    main()
