"""The C search and the final fit: one scoring loop over whichever solver ``solver`` names."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from transfer.classifiers.logreg.checks import (
    DEFAULT_HISTORY,
    DEFAULT_TOL,
    TORCH_MAX_ITER,
    check_inputs,
    check_sklearn_options,
    check_solver,
    check_stopping,
    check_torch_options,
)
from transfer.classifiers.logreg.model import LinearModel, LogregError
from transfer.classifiers.logreg.sklearn_chain import (
    SklearnSolver,
)
from transfer.classifiers.logreg.torch_solver import TorchSolver
from transfer.stats import metrics


def default_C_grid(num: int = 45) -> np.ndarray:
    """C = 1 / wd for wd = logspace(-6, 5, num), in that order (large C first).

    Built from ``torch.logspace`` in float32 exactly as the original (``1. / wd.item()``), so the
    printed C values match its logs to the last digit.
    """
    weight_decays = torch.logspace(-6, 5, num).double().numpy()
    return 1.0 / weight_decays


@dataclass
class GridSearchResult:
    """Validation scores along the C grid and the winner (first best in grid order).

    ``last_model`` is the fit at the grid's last C: the original refit its single warm-started
    estimator from there, so pass it as ``warm_start_from`` to reproduce the final fit exactly.
    """

    best_C: float
    best_index: int
    val_scores: list[float]
    Cs: list[float]
    last_model: LinearModel
    best_model: LinearModel
    unconverged_fits: int = 0
    seconds: float = 0.0
    details: dict = field(default_factory=dict)


def _make_solver(
    x: np.ndarray,
    y: np.ndarray,
    solver: str,
    device: torch.device,
    strategy: str,
    precision: str | None,
    tol: float,
    max_iter: int,
    history: int,
    stopping: str,
    progress: bool,
) -> SklearnSolver | TorchSolver:
    """The solver of these options, every option checked before any data moves."""
    check_stopping(stopping)
    if solver == "sklearn":
        check_sklearn_options(strategy, precision, tol, max_iter, history)
        return SklearnSolver(x, y, stopping, progress)
    dtype = check_torch_options(strategy, precision)
    return TorchSolver(x, y, device, dtype, strategy, stopping, tol, max_iter, history, progress)


def fit_logreg(
    x: np.ndarray,
    y: np.ndarray,
    C: float,
    solver: str = "sklearn",
    device: str = "cpu",
    warm_start_from: LinearModel | None = None,
    strategy: str = "chain",
    precision: str | None = None,
    tol: float = DEFAULT_TOL,
    max_iter: int = TORCH_MAX_ITER,
    history: int = DEFAULT_HISTORY,
    sklearn_stopping: str = "original",
    path_Cs: Sequence[float] | np.ndarray | None = None,
) -> LinearModel:
    """Fit one L2 logistic regression (multinomial for (n,) labels, one binary classifier per
    column for (n, C) 0/1 targets).

    sklearn, and torch's ``"chain"``: the original's estimator (``sklearn_stopping``: see
    ``SKLEARN_STOPPING``), started from ``warm_start_from`` when given, as the original refit its
    estimator after the grid. torch's converged strategies: without ``warm_start_from`` the fit
    walks the warm-started path over the values of ``path_Cs`` (default: the paper's grid) below
    C, then C, exactly as ``fit_logreg_grid`` reached C; a fit stopped at ``tol`` depends on where
    it started, so this makes the refit the same kind of model the grid scored. ``strategy``,
    ``precision``, ``tol``, ``max_iter`` and ``history`` are torch options: the sklearn solver
    rejects them.
    """
    x, y = check_inputs(x, y, "training")
    dev = check_solver(solver, device)
    if not C > 0:
        raise LogregError(f"C must be > 0, got {C}")
    fitter = _make_solver(x, y, solver, dev, strategy, precision, tol, max_iter, history,
                          sklearn_stopping, progress=False)
    steps = [C]
    if solver == "torch" and strategy != "chain" and warm_start_from is None:
        grid = default_C_grid() if path_Cs is None else np.asarray(path_Cs, dtype=np.float64)
        steps = sorted(float(value) for value in grid if value < C) + [C]
    return fitter.solve(steps, warm_start_from)[-1]


def fit_logreg_grid(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    Cs: Sequence[float] | np.ndarray,
    metric: str,
    solver: str = "sklearn",
    device: str = "cpu",
    progress: bool = True,
    strategy: str = "chain",
    precision: str | None = None,
    tol: float = DEFAULT_TOL,
    max_iter: int = TORCH_MAX_ITER,
    history: int = DEFAULT_HISTORY,
    sklearn_stopping: str = "original",
) -> GridSearchResult:
    """Fit on train for every C (in the given order) and score on val; first best wins.

    ``strategy`` (torch only): ``"chain"`` makes the original's fits, as ``sklearn`` does, in
    torch (see ``TorchProblem.solve_chain``): the same C, on any device. The converged
    strategies: ``"path"`` solves the Cs from the smallest to the largest, each warm-started
    from the previous solution and its curvature pairs; ``"batched"`` solves all Cs as one batch
    of independent problems. On the CPU the path is ~5x faster (it needs ~100 data passes for
    45 Cs where the batch needs ~800); on a GPU the batch trades that extra work for
    parallelism: time them with ``benchmarks/logreg_bench.py --strategies chain,path,batched``.
    A converged fit is not the original's: where the original's fits stopped at 100 iterations
    its val curve, and so its C, differ (see the README's linear section).

    ``tol`` (torch) bounds the largest gradient entry of the mean-loss objective, as
    current scikit-learn's tol. ``history`` is the L-BFGS memory: 20 pairs rather than scipy's
    10, because the path keeps its pairs from one C to the next and a longer memory halves its
    iterations. ``max_iter`` caps each fit (torch). The torch solver scores val on its device.
    """
    train_x, train_y = check_inputs(train_x, train_y, "training")
    val_x, val_y = check_inputs(val_x, val_y, "validation")
    dev = check_solver(solver, device)
    Cs = [float(C) for C in Cs]
    if not Cs or min(Cs) <= 0:
        raise LogregError(f"Cs must be a non-empty list of positive values, got {Cs}")
    if metric not in metrics.METRICS:
        raise LogregError(f"unknown metric {metric!r}; expected one of {metrics.METRICS}")
    if (metric == "voc11_map") != (train_y.ndim == 2) or train_y.ndim != val_y.ndim:
        raise LogregError(
            f"metric {metric!r} needs {'(n, C) 0/1' if metric == 'voc11_map' else '(n,)'} "
            f"labels, got train {train_y.shape} and val {val_y.shape}"
        )
    if train_x.shape[1] != val_x.shape[1]:
        raise LogregError(
            f"train and val features differ in width: {train_x.shape[1]} vs {val_x.shape[1]}"
        )
    fitter = _make_solver(train_x, train_y, solver, dev, strategy, precision, tol, max_iter,
                          history, sklearn_stopping, progress)

    start = time.perf_counter()
    models = fitter.solve(Cs)
    decide = fitter.decision_values(val_x)
    scores = [
        metrics.score(metric, val_y, decide(model), None if model.multilabel else model.classes_)
        for model in models
    ]
    unconverged, counts = fitter.counts(models)
    best = metrics.first_best(scores)
    chosen = "sequential" if solver == "sklearn" else strategy
    return GridSearchResult(
        best_C=Cs[best],
        best_index=best,
        val_scores=scores,
        Cs=Cs,
        last_model=models[-1],
        best_model=models[best],
        unconverged_fits=unconverged,
        seconds=time.perf_counter() - start,
        details={"solver": solver, "strategy": chosen, "device": str(dev), **counts},
    )
