"""Time the C search of the linear probe: scikit-learn (the original) vs the torch solver.

Both run in one process on the same synthetic "realistic" features: class-conditional Gaussians
with a shared low-rank nuisance, passed through ReLU (non-negative and half zeros, like a
ResNet-50's pooled features), overlapping enough for 60-90 % accuracy. Each solver walks the
45-value grid on train, scores val, refits train+val at its chosen C and scores test.
Torch strategies: ``chain`` (default) makes the original's fits, ``path`` and ``batched`` solve
each C to convergence (see transfer/classifiers/logreg/). ``--sensitivity`` reruns scikit-learn on
the same features with their columns permuted, the same problem up to rounding: how far its own C
moves is the noise floor against which the torch chain's C is judged (capped fits at large C are
ill-conditioned, and rounding decides between near-equal val scores).
``--sklearn-stopping original`` (default) is the original's stopping rule, ``installed`` today's
default tol; ``--threads`` gives both solvers the same CPU budget (a busy machine makes
multi-threaded BLAS 10-100x slower, so compare at equal, low thread counts).

    python benchmarks/logreg_bench.py --threads 1           # 10,000 x 2048, 100 classes
    python benchmarks/logreg_bench.py --n-train 2944 --n-val 736 --n-test 3669 --classes 37
    python benchmarks/logreg_bench.py --device cuda --strategies chain,path,batched
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transfer.classifiers import logreg  # noqa: E402
from transfer.stats import metrics  # noqa: E402


def make_realistic_features(
    n_train: int = 10_000,
    n_val: int = 2_000,
    n_test: int = 2_000,
    dim: int = 2048,
    num_classes: int = 100,
    separation: float = 0.13,
    nuisance_rank: int = 64,
    nuisance_scale: float = 0.5,
    seed: int = 0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Synthetic pooled-feature-like data: {split: (float32 features, int64 labels)}.

    Balanced classes; relu(class mean + low-rank nuisance + unit noise). ``separation`` (the
    class means' standard deviation per dimension) sets the difficulty: 0.13 gives about 80 %
    accuracy at 2048 dims and 100 classes.
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, separation, (num_classes, dim)).astype(np.float32)
    basis = (rng.normal(0.0, 1.0, (nuisance_rank, dim)) / np.sqrt(nuisance_rank)).astype(
        np.float32
    )

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.permutation(np.arange(n) % num_classes)
        nuisance = rng.standard_normal((n, nuisance_rank), dtype=np.float32) @ basis
        z = means[labels] + nuisance_scale * nuisance
        z += rng.standard_normal((n, dim), dtype=np.float32)
        return np.maximum(z, 0.0, out=z), labels.astype(np.int64)

    return {"train": draw(n_train), "val": draw(n_val), "test": draw(n_test)}


def _run(solver: str, data, Cs, metric: str, device: str, sklearn_stopping: str = "original",
         **options) -> dict:
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = data["train"], data["val"], data["test"]
    start = time.perf_counter()
    grid = logreg.fit_logreg_grid(
        train_x, train_y, val_x, val_y, Cs, metric, solver=solver, device=device,
        progress=False, sklearn_stopping=sklearn_stopping, **options,
    )
    grid_seconds = time.perf_counter() - start
    trainval_x = np.concatenate([train_x, val_x])
    trainval_y = np.concatenate([train_y, val_y])
    start = time.perf_counter()
    # the original (and the chain) refit the warm-started estimator from the grid's last fit,
    # as linear.py does; the converged strategies start from their train fit at the chosen C
    chain = solver == "sklearn" or grid.details["strategy"] == "chain"
    final = logreg.fit_logreg(
        trainval_x, trainval_y, grid.best_C, solver=solver, device=device,
        warm_start_from=grid.last_model if chain else grid.best_model,
        sklearn_stopping=sklearn_stopping, path_Cs=Cs,
        **{key: value for key, value in options.items()
           if key in ("strategy", "precision", "tol", "max_iter", "history")},
    )
    refit_seconds = time.perf_counter() - start
    classes = None if final.multilabel else final.classes_
    return {
        "grid_seconds": grid_seconds,
        "refit_seconds": refit_seconds,
        "best_C": grid.best_C,
        "best_index": grid.best_index,
        "best_val": grid.val_scores[grid.best_index],
        "val_scores": grid.val_scores,
        "test_score": metrics.score(metric, test_y, final.decision_function(test_x), classes),
        "unconverged_fits": grid.unconverged_fits,
        "strategy": grid.details["strategy"],
        "iterations": grid.details["iterations"],
        "evaluations": grid.details.get("evaluations"),
    }


def benchmark_solvers(
    data: dict | None = None,
    Cs: np.ndarray | None = None,
    metric: str = "accuracy",
    device: str = "cpu",
    strategies: tuple[str, ...] = ("chain",),
    include_sklearn: bool = True,
    sklearn_stopping: str = "original",
    torch_tol: float = logreg.DEFAULT_TOL,
    torch_precision: str | None = None,
    sensitivity: bool = False,
    **data_options,
) -> dict:
    """Time the sklearn grid and the torch grid(s) on the same data; return all figures.

    ``data`` defaults to ``make_realistic_features(**data_options)``; ``Cs`` to the paper's grid.
    The torch runs use ``device`` and each of ``strategies``; ratios are sklearn / torch time.
    ``sensitivity`` adds scikit-learn on column-permuted features ("sklearn_permuted").
    """
    data = make_realistic_features(**data_options) if data is None else data
    Cs = logreg.default_C_grid() if Cs is None else np.asarray(Cs)
    report: dict = {
        "shape": {split: list(features.shape) for split, (features, _) in data.items()},
        "grid_size": len(Cs),
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }
    if include_sklearn:
        report["sklearn"] = _run("sklearn", data, Cs, metric, "cpu", sklearn_stopping)
        report["sklearn"]["stopping"] = sklearn_stopping
    if include_sklearn and sensitivity:
        order = np.random.default_rng(1).permutation(data["train"][0].shape[1])
        permuted = {split: (x[:, order], y) for split, (x, y) in data.items()}
        report["sklearn_permuted"] = _run("sklearn", permuted, Cs, metric, "cpu", sklearn_stopping)
        _compare(report["sklearn_permuted"], report["sklearn"])
    report["torch_tol"] = torch_tol
    for strategy in strategies:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        result = _run("torch", data, Cs, metric, device, strategy=strategy, tol=torch_tol,
                      precision=torch_precision)
        key = f"torch_{result['strategy']}"
        report[key] = result
        if include_sklearn:
            _compare(result, report["sklearn"])
    return report


def _compare(result: dict, sk: dict) -> None:
    """Add speed, C and test agreement against the sklearn run ``sk`` to ``result``."""
    result["speedup_grid"] = sk["grid_seconds"] / result["grid_seconds"]
    result["speedup_total"] = (sk["grid_seconds"] + sk["refit_seconds"]) / (
        result["grid_seconds"] + result["refit_seconds"]
    )
    result["grid_steps_from_sklearn_C"] = abs(result["best_index"] - sk["best_index"])
    result["test_diff_vs_sklearn"] = result["test_score"] - sk["test_score"]
    val_diff = np.abs(np.subtract(result["val_scores"], sk["val_scores"]))
    result["max_val_diff_vs_sklearn"] = float(val_diff.max())


def limit_threads(threads: int) -> None:
    """The same thread budget for both solvers: numpy/scipy's BLAS and scikit-learn's OpenMP
    through threadpoolctl (a scikit-learn dependency), torch through its own setting."""
    import sklearn.linear_model  # noqa: F401  (load its OpenMP runtime so the limit reaches it)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    torch.set_num_threads(threads)


def _print(report: dict) -> None:
    print(f"data {report['shape']}, {report['grid_size']} C values, "
          f"{report['torch_threads']} torch threads, torch device {report['device']}")
    for name, result in report.items():
        if not isinstance(result, dict) or "grid_seconds" not in result:
            continue
        line = (f"{name:>14}: grid {result['grid_seconds']:8.1f} s  refit "
                f"{result['refit_seconds']:6.1f} s  C={result['best_C']:.4g} "
                f"(#{result['best_index']})  val {result['best_val']:.2f}  "
                f"test {result['test_score']:.2f}  unconverged {result['unconverged_fits']}")
        if "speedup_grid" in result:
            line += (f"  | x{result['speedup_grid']:.2f} grid, x{result['speedup_total']:.2f} "
                     f"grid+refit, {result['grid_steps_from_sklearn_C']} grid steps from "
                     f"sklearn's C, test {result['test_diff_vs_sklearn']:+.2f}, val curve "
                     f"within {result['max_val_diff_vs_sklearn']:.2f}")
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-val", type=int, default=2_000)
    parser.add_argument("--n-test", type=int, default=2_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--separation", type=float, default=0.13)
    parser.add_argument("--grid", type=int, default=45, help="number of C values (paper: 45)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--strategies", default="chain",
                        help="comma-separated torch strategies: chain, path, batched")
    parser.add_argument("--torch-precision", choices=tuple(logreg.PRECISIONS), default=None,
                        help="torch solver's dtype (default: float64 for chain, else float32)")
    parser.add_argument("--sensitivity", action="store_true",
                        help="also run scikit-learn on column-permuted features (noise floor)")
    parser.add_argument("--no-sklearn", action="store_true", help="time the torch solver only")
    parser.add_argument("--sklearn-stopping", default="original", choices=logreg.SKLEARN_STOPPING,
                        help="original: tol 1e-4/n as scikit-learn 0.22; installed: tol 1e-4")
    parser.add_argument("--torch-tol", type=float, default=logreg.DEFAULT_TOL,
                        help="torch solver's tolerance on the mean-loss gradient")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for both solvers (BLAS, OpenMP, torch); default: all")
    parser.add_argument("--json", help="also write the full report to this JSON file")
    args = parser.parse_args()
    if args.threads is not None:
        limit_threads(args.threads)
    report = benchmark_solvers(
        Cs=logreg.default_C_grid(args.grid),
        device=args.device,
        strategies=tuple(args.strategies.split(",")),
        include_sklearn=not args.no_sklearn,
        sklearn_stopping=args.sklearn_stopping,
        torch_tol=args.torch_tol,
        torch_precision=args.torch_precision,
        sensitivity=args.sensitivity,
        n_train=args.n_train,
        n_val=args.n_val,
        n_test=args.n_test,
        dim=args.dim,
        num_classes=args.classes,
        separation=args.separation,
    )
    _print(report)
    if args.json:
        from transfer.atomic import write_json_atomic

        write_json_atomic(args.json, report)


if __name__ == "__main__":
    main()
