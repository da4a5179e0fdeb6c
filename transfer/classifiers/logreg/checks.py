"""The linear probe's options and inputs, checked once with messages that name the fix."""

from __future__ import annotations

import numpy as np
import torch

from transfer.classifiers.logreg.model import LogregError

SOLVERS = ("sklearn", "torch")
# torch strategies: "chain" repeats the original's fits (scipy's L-BFGS-B, scikit-learn's options,
# warm-started along the grid in its order), so it picks the original's C; "path" and "batched"
# solve each C to convergence (tol on the mean-loss gradient), the true regularisation path.
STRATEGIES = ("chain", "path", "batched")
PRECISIONS = {"float64": torch.float64, "float32": torch.float32}
# scikit-learn 0.22 minimised sum_i loss_i + ||W||^2 / (2C) and stopped at max |grad| <= 1e-4;
# current scikit-learn minimises that objective divided by n with the same default tol, a stopping
# rule n times looser. "original" passes tol = 1e-4 / n to restore 0.22's rule (its lbfgs then
# often runs to max_iter=100, hence the original's ignore_warnings(ConvergenceWarning));
# "installed" keeps today's default.
SKLEARN_STOPPING = ("original", "installed")
ORIGINAL_TOL = 1e-4
# Options of the converged torch strategies (see fit_logreg_grid).
DEFAULT_TOL = 1e-4
TORCH_MAX_ITER = 1000
DEFAULT_HISTORY = 20


def check_inputs(x, y, what: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2:
        raise LogregError(f"{what} features must be a 2-d array (n, dim), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise LogregError(f"{what} features must be floating point, got dtype {x.dtype}")
    if y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        raise LogregError(
            f"{what} labels must be (n,) class indices or (n, C) 0/1 targets with n = "
            f"{x.shape[0]}, got shape {y.shape}"
        )
    if not np.isfinite(x).all():
        raise LogregError(f"{what} features contain NaN or infinity")
    if y.ndim == 2:
        if not np.isin(y, (0, 1)).all():
            raise LogregError(f"{what} multilabel targets must be 0/1")
        constant = np.flatnonzero(y.min(axis=0) == y.max(axis=0))
        if constant.size:
            raise LogregError(
                f"{what} multilabel targets: class column(s) {constant.tolist()} hold a single "
                "value, so no binary classifier can be fitted"
            )
        return x, y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.integer):
        raise LogregError(f"{what} labels must be integer class indices, got dtype {y.dtype}")
    if np.unique(y).size < 2:
        raise LogregError(f"{what} labels hold a single class; logistic regression needs two")
    return x, y


def check_solver(solver: str, device: str) -> torch.device:
    if solver not in SOLVERS:
        raise LogregError(f"unknown solver {solver!r}; expected one of {', '.join(SOLVERS)}")
    try:
        dev = torch.device(device)
    except RuntimeError as error:
        raise LogregError(f"bad device {device!r}: {error}") from error
    if solver == "sklearn" and dev.type != "cpu":
        raise LogregError(f"the sklearn solver runs on the CPU only; got device {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LogregError(f"device {device!r} requested but CUDA is not available")
    return dev


def check_torch_options(strategy: str, precision: str | None) -> torch.dtype:
    """The dtype of a torch strategy: float64 for the chain, whose capped fits must follow
    scikit-learn's (float32 rounding moves where they stop: the C moved 9 grid steps on a
    37-class benchmark), float32 for the converged strategies, unless ``precision`` says."""
    if strategy not in STRATEGIES:
        raise LogregError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    if precision is None:
        precision = "float64" if strategy == "chain" else "float32"
    if precision not in PRECISIONS:
        raise LogregError(
            f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}"
        )
    return PRECISIONS[precision]


def check_stopping(stopping: str) -> None:
    if stopping not in SKLEARN_STOPPING:
        raise LogregError(f"unknown sklearn_stopping {stopping!r}; expected {SKLEARN_STOPPING}")


def sklearn_tol(stopping: str, n: int) -> float:
    """scikit-learn's tol for the original's stopping rule on n samples (``SKLEARN_STOPPING``)."""
    check_stopping(stopping)
    return ORIGINAL_TOL / n if stopping == "original" else ORIGINAL_TOL


def check_sklearn_options(strategy: str, precision: str | None, tol: float, max_iter: int,
                          history: int) -> None:
    """The sklearn solver makes the original's chain only: a torch-only option given to it is an
    error rather than silently ignored."""
    given = [
        f"{name}={value!r}"
        for name, value, default in (
            ("strategy", strategy, "chain"),
            ("precision", precision, None),
            ("tol", tol, DEFAULT_TOL),
            ("max_iter", max_iter, TORCH_MAX_ITER),
            ("history", history, DEFAULT_HISTORY),
        )
        if value != default
    ]
    if given:
        raise LogregError(
            f"{', '.join(given)}: option(s) of the torch solver only; the sklearn solver makes "
            "the original's chain of fits (use solver='torch' for them)"
        )
