"""The linear probe: L2-regularised logistic regression on frozen features, and its C search.

Two solvers behind one interface:

- ``"sklearn"`` reproduces the original: one ``LogisticRegression(solver="lbfgs",
  warm_start=True)`` with ``max_iter`` 100, refit along the grid in its order, each fit starting
  from the previous one, and the original's stopping rule (tol 1e-4 on scikit-learn 0.22's
  unscaled objective, i.e. ``tol = 1e-4 / n`` today: see ``SKLEARN_STOPPING``; 0.22 also stopped
  on scipy's default relative reduction, 2.2e-9, which today's scikit-learn fixes at 64 eps, so
  a fit can run a few iterations longer than the original's did). Features are cast
  to float64, as 0.22 did for lbfgs (scikit-learn >= 1.x would keep float32). Multinomial is what
  scikit-learn >= 1.8 does for 3+ classes (``multi_class`` is gone).
- ``"torch"`` minimises the same objective as current scikit-learn (checked on 1.9),
  ``mean_i loss_i + ||W||^2 / (2 C n)`` (intercept unpenalised), on any device. Its default
  strategy, ``"chain"``, makes the sklearn solver's fits: the same sequence of warm-started fits,
  each by scipy's L-BFGS-B repeated step for step (``transfer/lbfgsb.py``) with scikit-learn's
  options, in float64. Most of the original's fits stop at the 100-iteration cap, and its C is
  chosen among their val scores, so only the same capped fits give the same C; a solver run to
  convergence picks another. The converged strategies (``"path"``, ``"batched"``, float32)
  stop, like scikit-learn, when the largest gradient entry is <= ``tol``; their L-BFGS is
  written here rather than taken from ``torch.optim.LBFGS`` because it must solve many problems
  at once with a line search each, carry curvature pairs from one C to the next, and accept
  steps by the gradient once float32 losses stop resolving decreases.

Binary problems (one per class for VOC's mAP): the original passed ``multi_class="multinomial"``,
so scikit-learn 0.22 fitted a two-class softmax with both weight rows penalised. Its optimum has
rows (-w/2, w/2) where w is the binary logistic regression with C doubled, and ``coef_`` held
w/2. Both solvers therefore fit binary problems with ``2 C`` and store w/2, which reproduces the
original's objective and decision values; the reported C stays the grid's C.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from transfer import lbfgsb, metrics
from transfer.errors import TransferError

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
# What installed scikit-learn passes to scipy's L-BFGS-B (checked on 1.9): the torch chain
# repeats its fits with the same options.
SKLEARN_MAX_ITER = 100
SKLEARN_FTOL = 64 * np.finfo(float).eps
SKLEARN_MAX_LS = 50
# The original fitted a binary problem as a two-class softmax: see the module docstring.
BINARY_C_FACTOR = 2.0
DEFAULT_TOL = 1e-4
TORCH_MAX_ITER = 1000
# Relative rounding level of a float32 loss summed in float64 (Hager & Zhang's epsilon).
_LOSS_NOISE = 1e-6


class LogregError(TransferError, ValueError):
    """Bad input to the linear probe (shapes, labels, solver, device)."""


def default_C_grid(num: int = 45) -> np.ndarray:
    """C = 1 / wd for wd = logspace(-6, 5, num), in that order (large C first).

    Built from ``torch.logspace`` in float32 exactly as the original (``1. / wd.item()``), so the
    printed C values match its logs to the last digit.
    """
    weight_decays = torch.logspace(-6, 5, num).double().numpy()
    return 1.0 / weight_decays


@dataclass
class LinearModel:
    """A fitted linear head: ``decision_function(x) = x @ coef_.T + intercept_``.

    Single-label: one row per class in ``classes_`` (a binary problem has the two rows (-w/2, w/2)
    of the original's two-class softmax). Multilabel: one row per class, the w/2 of that class's
    binary classifier, and ``classes_`` is None.
    """

    coef_: np.ndarray
    intercept_: np.ndarray
    classes_: np.ndarray | None
    n_iter: int = 0
    converged: bool = True

    @property
    def multilabel(self) -> bool:
        return self.classes_ is None

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.coef_.shape[1]:
            raise LogregError(
                f"features must be (n, {self.coef_.shape[1]}) for this model, got {x.shape}"
            )
        return x.astype(np.float64, copy=False) @ self.coef_.T + self.intercept_

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.multilabel:
            return (self.decision_function(x) > 0).astype(np.int64)
        return self.classes_[self.decision_function(x).argmax(axis=1)]


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


# ----------------------------------------------------------------------------- validation


def _check_inputs(x, y, what: str) -> tuple[np.ndarray, np.ndarray]:
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


def _check_solver(solver: str, device: str) -> torch.device:
    if solver not in SOLVERS:
        raise LogregError(f"unknown solver {solver!r}; expected one of {', '.join(SOLVERS)}")
    try:
        dev = torch.device(device)
    except RuntimeError as error:
        raise LogregError(f"bad device {device!r}: {error}") from None
    if solver == "sklearn" and dev.type != "cpu":
        raise LogregError(f"the sklearn solver runs on the CPU only; got device {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LogregError(f"device {device!r} requested but CUDA is not available")
    return dev


def _check_torch_options(strategy: str, precision: str | None) -> torch.dtype:
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


def _check_stopping(stopping: str) -> None:
    if stopping not in SKLEARN_STOPPING:
        raise LogregError(f"unknown sklearn_stopping {stopping!r}; expected {SKLEARN_STOPPING}")


def _sklearn_tol(stopping: str, n: int) -> float:
    """scikit-learn's tol for the original's stopping rule on n samples (``SKLEARN_STOPPING``)."""
    _check_stopping(stopping)
    return ORIGINAL_TOL / n if stopping == "original" else ORIGINAL_TOL


def first_best(scores: Sequence[float]) -> int:
    """Index of the first strictly best score, walking in order (NaN never wins): how the linear
    probe picks C and the kNN probe picks k."""
    best_index, best = 0, -math.inf
    for index, value in enumerate(scores):
        if value > best:
            best_index, best = index, value
    return best_index


# ----------------------------------------------------------------------------- sklearn solver


def _scipy_wheel_blas():
    """The BLAS that scipy's wheel ships beside the package (``scipy.libs``), as a threadpoolctl
    controller: the sklearn solver gives it one thread while numpy's BLAS keeps its own.

    L-BFGS-B's own BLAS calls are vector operations too small to gain from threads, and the idle
    workers of scipy's pool spin beside those of numpy's GEMMs: on 2 cores that made the
    original's grid on digits 7x slower (about 100 s against 13 s). Where scipy shares numpy's
    BLAS (e.g. conda) the controller is empty and nothing is limited.
    """
    import scipy
    from threadpoolctl import ThreadpoolController

    wheel_libs = os.path.dirname(scipy.__file__) + ".libs"
    controller = ThreadpoolController()
    paths = [
        lib.filepath
        for lib in controller.lib_controllers
        if lib.user_api == "blas" and os.path.dirname(lib.filepath) == wheel_libs
    ]
    return controller.select(filepath=paths)


class _SklearnChain:
    """The original's single warm-started estimator, refit for each (C, class) in turn."""

    def __init__(
        self, warm_start_from: LinearModel | None = None, stopping: str = "original"
    ) -> None:
        from sklearn.linear_model import LogisticRegression

        _check_stopping(stopping)
        self.stopping = stopping
        self.estimator = LogisticRegression(solver="lbfgs", warm_start=True)
        self.scipy_blas = _scipy_wheel_blas()
        self.convergence_warnings = 0
        self.iterations = 0
        if warm_start_from is not None:
            coef, intercept = _binary_or_multinomial_state(warm_start_from)
            self.estimator.coef_ = coef
            self.estimator.intercept_ = intercept

    def _fit(self, x: np.ndarray, y: np.ndarray, C: float) -> None:
        from sklearn.exceptions import ConvergenceWarning

        tol = _sklearn_tol(self.stopping, len(x))
        self.estimator.set_params(C=C, tol=tol)
        with warnings.catch_warnings(record=True) as caught, self.scipy_blas.limit(limits=1):
            warnings.simplefilter("always", ConvergenceWarning)
            self.estimator.fit(x, y)
        self.last_n_iter = int(np.max(self.estimator.n_iter_))
        self.iterations += self.last_n_iter
        self.convergence_warnings += sum(
            issubclass(w.category, ConvergenceWarning) for w in caught
        )

    def fit(self, x: np.ndarray, y: np.ndarray, C: float) -> LinearModel:
        if y.ndim == 2:
            rows, intercepts, n_iter = [], [], 0
            for column in range(y.shape[1]):
                self._fit(x, y[:, column], BINARY_C_FACTOR * C)
                rows.append(self.estimator.coef_[0] / 2)
                intercepts.append(self.estimator.intercept_[0] / 2)
                n_iter = max(n_iter, self.last_n_iter)
            return LinearModel(np.stack(rows), np.asarray(intercepts), None, n_iter)
        classes = np.unique(y)
        if classes.size == 2:
            self._fit(x, y, BINARY_C_FACTOR * C)
            half = self.estimator.coef_[0] / 2
            half_b = self.estimator.intercept_[0] / 2
            return LinearModel(
                np.stack([-half, half]), np.array([-half_b, half_b]), classes, self.last_n_iter
            )
        self._fit(x, y, C)
        return LinearModel(
            self.estimator.coef_.copy(),
            self.estimator.intercept_.copy(),
            self.estimator.classes_,
            self.last_n_iter,
        )


def _binary_or_multinomial_state(model: LinearModel) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's (coef_, intercept_) for a warm start from ``model``.

    A multilabel model continues the original's chain from its last class's classifier.
    """
    if model.multilabel:
        return 2 * model.coef_[-1:].copy(), 2 * model.intercept_[-1:].copy()
    if model.coef_.shape[0] == 2:
        return 2 * model.coef_[1:].copy(), 2 * model.intercept_[1:].copy()
    return model.coef_.copy(), model.intercept_.copy()


# ----------------------------------------------------------------------------- torch solver


class _Objective:
    """Mean logistic loss + lam/2 ||W||^2 for a batch of independent problems.

    A problem's parameters are one flat row. Softmax (single-label): the row is K*d weights then K
    intercepts, one problem per C. Sigmoid (multilabel or binary): the row is d weights then one
    intercept, one problem per (C, class). All problems of a call share one pair of GEMMs.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, num_classes: int, sigmoid: bool):
        self.x = x
        self.n, self.d = x.shape
        self.k = num_classes
        self.sigmoid = sigmoid
        self.y = y  # sigmoid: (n, K) float; softmax: (n,) long
        self.width = self.d + 1 if sigmoid else self.k * (self.d + 1)
        self.n_weights = self.d if sigmoid else self.k * self.d
        self.evaluations = 0  # problem-evaluations (rows), for benchmarks

    def __call__(
        self, params: torch.Tensor, lam: torch.Tensor, columns: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss (float64) and gradient of each row of ``params``; ``columns`` gives the class of
        each sigmoid problem."""
        a = params.shape[0]
        self.evaluations += a
        weights = params[:, : self.n_weights]
        grad = torch.empty_like(params)
        if self.sigmoid:
            logits = torch.addmm(params[:, self.d], self.x, weights.T)  # (n, a)
            targets = self.y[:, columns]
            losses = torch.nn.functional.softplus(logits) - targets * logits
            residual = torch.sigmoid(logits).sub_(targets).div_(self.n)
            torch.mm(residual.T, self.x, out=grad[:, : self.d])
            grad[:, self.d] = residual.sum(0)
            data_loss = losses.sum(0, dtype=torch.float64) / self.n
        else:
            flat_w = weights.reshape(a * self.k, self.d)
            # (W X^T)^T rather than X W^T: for few classes MKL's float64 GEMM is up to 2x faster
            logits = torch.mm(flat_w, self.x.T).T.reshape(self.n, a, self.k)
            logits += params[:, self.n_weights :].reshape(1, a, self.k)
            log_norm = torch.logsumexp(logits, dim=2)  # (n, a)
            picked = logits.gather(2, self.y.view(-1, 1, 1).expand(self.n, a, 1)).squeeze(2)
            data_loss = (log_norm - picked).sum(0, dtype=torch.float64) / self.n
            probs = logits.sub_(log_norm.unsqueeze(2)).exp_()
            probs.scatter_add_(
                2,
                self.y.view(-1, 1, 1).expand(self.n, a, 1),
                torch.full((self.n, a, 1), -1.0, dtype=probs.dtype, device=probs.device),
            )
            probs.div_(self.n)
            grad_w = torch.mm(probs.view(self.n, a * self.k).T, self.x)
            grad[:, : self.n_weights] = grad_w.view(a, self.n_weights)
            grad[:, self.n_weights :] = probs.sum(0)
        squared = (weights * weights).sum(1, dtype=torch.float64)
        grad[:, : self.n_weights] += lam.view(-1, 1).to(grad.dtype) * weights
        return data_loss + 0.5 * lam * squared, grad


@dataclass
class _LbfgsState:
    """Iterate, objective value/gradient and curvature history of each problem."""

    params: torch.Tensor  # (P, D)
    loss: torch.Tensor  # (P,) float64
    grad: torch.Tensor  # (P, D)
    s: torch.Tensor  # (m, P, D)
    y: torch.Tensor  # (m, P, D)
    rho: torch.Tensor  # (m, P) float64; 0 marks an empty or rejected pair
    gamma: torch.Tensor  # (P,) float64 initial inverse-Hessian scale
    slot: int = 0


def _new_state(objective, params, lam, columns, history: int) -> _LbfgsState:
    loss, grad = objective(params, lam, columns)
    zeros = torch.zeros((history, *params.shape), dtype=params.dtype, device=params.device)
    return _LbfgsState(
        params=params,
        loss=loss,
        grad=grad,
        s=zeros,
        y=zeros.clone(),
        rho=torch.zeros((history, params.shape[0]), dtype=torch.float64, device=params.device),
        gamma=torch.zeros(params.shape[0], dtype=torch.float64, device=params.device),
    )


def _change_penalty(state: _LbfgsState, n_weights: int, old: torch.Tensor, new: torch.Tensor):
    """Move a solved state to a new penalty without any data pass.

    The penalty's value, gradient and Hessian are known in closed form, so the loss, the gradient
    and every stored curvature pair y = grad difference are corrected exactly: the curvature
    learnt at one C keeps serving at the next (this is what makes the warm path cheap).
    """
    delta = new - old
    weights = state.params[:, :n_weights]
    state.loss = state.loss + 0.5 * delta * (weights * weights).sum(1, dtype=torch.float64)
    state.grad[:, :n_weights] += delta.view(-1, 1).to(weights.dtype) * weights
    state.y[:, :, :n_weights] += delta.view(1, -1, 1).to(weights.dtype) * state.s[:, :, :n_weights]
    sy = (state.s * state.y).sum(2, dtype=torch.float64)
    valid = (state.rho != 0) & (sy > 0)
    state.rho = torch.where(valid, 1.0 / sy.clamp_min(1e-300), torch.zeros_like(sy))
    newest = (state.slot - 1) % state.s.shape[0]
    yy = (state.y[newest] * state.y[newest]).sum(1, dtype=torch.float64)
    state.gamma = torch.where(valid[newest], sy[newest] / yy.clamp_min(1e-300), state.gamma)


def _direction(state: _LbfgsState) -> torch.Tensor:
    """L-BFGS two-loop recursion for all problems at once (empty pairs have rho = 0)."""
    m = state.s.shape[0]
    q = -state.grad.clone()
    alphas = [None] * m
    order = [(state.slot - 1 - j) % m for j in range(m)]  # newest first
    for j in order:
        alpha = state.rho[j] * (state.s[j] * q).sum(1, dtype=torch.float64)
        alphas[j] = alpha
        q -= alpha.to(q.dtype).view(-1, 1) * state.y[j]
    no_history = state.gamma == 0
    # First step of a problem without curvature: a steepest-descent step of length 1 / ||g||.
    first_scale = 1.0 / state.grad.norm(dim=1).double().clamp_min(1e-30)
    scale = torch.where(no_history, first_scale, state.gamma)
    q *= scale.to(q.dtype).view(-1, 1)
    for j in reversed(order):
        beta = state.rho[j] * (state.y[j] * q).sum(1, dtype=torch.float64)
        q += (alphas[j] - beta).to(q.dtype).view(-1, 1) * state.s[j]
    return q


def _acceptable(loss, slope, step, new_loss, new_grad, direction, c1):
    """Armijo sufficient decrease, or Hager & Zhang's approximate Wolfe test once loss changes
    drown in float32 rounding: the loss did not rise by more than 1e-6 relative and the slope
    at the new point is at most 0.8 |slope at the old point| (the Armijo condition of the
    quadratic model, checked with the accurate gradient instead of the noisy loss)."""
    finite = torch.isfinite(new_loss)
    armijo = new_loss <= loss + c1 * step * slope
    new_slope = (new_grad * direction).sum(1, dtype=torch.float64)
    approximate = (new_loss <= loss + _LOSS_NOISE * loss.abs()) & (new_slope <= -0.8 * slope)
    return finite & (armijo | approximate)


def _lbfgs(
    objective: _Objective,
    state: _LbfgsState,
    lam: torch.Tensor,
    columns: torch.Tensor | None,
    tol: float,
    max_iter: int,
    progress: tqdm | None = None,
    c1: float = 1e-4,
    max_backtracks: int = 30,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run L-BFGS on every problem until max |grad| <= tol (scikit-learn's ``gtol``), the line
    search finds no acceptable step (float32 precision floor), or ``max_iter``.

    The line search tries the unit step, then backtracks with safeguarded quadratic
    interpolation until ``_acceptable``; the objective is convex, so accepted steps give pairs
    with s.y > 0 and no Wolfe curvature test is needed (pairs that still fail it are dropped).
    Problems are independent: each has its own step, history and stop. Returns (iterations,
    converged) per problem.
    """
    num = state.params.shape[0]
    device = state.params.device
    iterations = torch.zeros(num, dtype=torch.long, device=device)
    grad_max = state.grad.abs().amax(1)
    converged = grad_max <= tol
    active = ~converged
    history = state.s.shape[0]
    for _ in range(max_iter):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        direction = _direction(state)[idx]
        params, loss, grad = state.params[idx], state.loss[idx], state.grad[idx]
        slope = (grad * direction).sum(1, dtype=torch.float64)
        uphill = slope >= 0
        if uphill.any():  # lost positive definiteness to rounding: fall back to -grad
            direction[uphill] = -grad[uphill] / grad[uphill].norm(dim=1, keepdim=True)
            slope = (grad * direction).sum(1, dtype=torch.float64)
        step = torch.ones(idx.numel(), dtype=torch.float64, device=device)
        sub_columns = None if columns is None else columns[idx]
        trial = params + direction
        new_loss, new_grad = objective(trial, lam[idx], sub_columns)
        accepted = _acceptable(loss, slope, step, new_loss, new_grad, direction, c1)
        for _ in range(max_backtracks):
            retry = (~accepted).nonzero().squeeze(1)
            if retry.numel() == 0:
                break
            t = step[retry]
            curvature = 2 * (new_loss[retry] - loss[retry] - t * slope[retry])
            guess = torch.where(
                torch.isfinite(curvature) & (curvature > 0),
                -slope[retry] * t * t / curvature.clamp_min(1e-300),
                0.1 * t,
            )
            t = torch.minimum(torch.maximum(guess, 0.1 * t), 0.5 * t)
            step[retry] = t
            trial[retry] = params[retry] + t.to(params.dtype).view(-1, 1) * direction[retry]
            sub_lam = lam[idx][retry]
            retry_columns = None if sub_columns is None else sub_columns[retry]
            retry_loss, retry_grad = objective(trial[retry], sub_lam, retry_columns)
            new_loss[retry], new_grad[retry] = retry_loss, retry_grad
            accepted[retry] = _acceptable(
                loss[retry], slope[retry], t, retry_loss, retry_grad, direction[retry], c1
            )
        # Update histories (rejected problems get an empty pair and stop).
        s = torch.where(accepted.view(-1, 1), trial - params, torch.zeros_like(params))
        y = torch.where(accepted.view(-1, 1), new_grad - grad, torch.zeros_like(grad))
        sy = (s * y).sum(1, dtype=torch.float64)
        yy = (y * y).sum(1, dtype=torch.float64)
        good = accepted & (sy > 1e-12 * yy) & (yy > 0)
        slot = state.slot
        state.s[slot, idx] = torch.where(good.view(-1, 1), s, torch.zeros_like(s))
        state.y[slot, idx] = torch.where(good.view(-1, 1), y, torch.zeros_like(y))
        state.rho[slot, idx] = torch.where(good, 1.0 / sy.clamp_min(1e-300), torch.zeros_like(sy))
        state.gamma[idx] = torch.where(good, sy / yy.clamp_min(1e-300), state.gamma[idx])
        state.slot = (slot + 1) % history
        keep = accepted.view(-1, 1)
        state.params[idx] = torch.where(keep, trial, params)
        state.grad[idx] = torch.where(keep, new_grad, grad)
        state.loss[idx] = torch.where(accepted, new_loss, loss)
        iterations[idx] += accepted.long()
        done = state.grad[idx].abs().amax(1) <= tol
        converged[idx] = done
        active[idx] = accepted & ~done
        if progress is not None:
            progress.set_postfix(active=int(active.sum()), refresh=False)
            progress.update(1)
    return iterations, converged


class _TorchProblem:
    """Features and targets on the device, in the layout the objective wants."""

    def __init__(
        self, x: np.ndarray, y: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32
    ):
        if dtype == torch.float64 and device.type == "mps":
            raise LogregError(
                "Apple's MPS has no float64, which the torch chain needs to repeat the "
                "original's fits; use --solver sklearn (CPU) there"
            )
        self.device = device
        self.dtype = dtype
        self.x = torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=device)
        self.multilabel = y.ndim == 2
        if self.multilabel:
            self.classes = None
            self.num_classes = y.shape[1]
            target = torch.as_tensor(y, dtype=dtype, device=device)
            self.binary = False
            self.sigmoid = True
        else:
            self.classes, encoded = np.unique(y, return_inverse=True)
            self.num_classes = self.classes.size
            self.binary = self.num_classes == 2
            self.sigmoid = self.binary
            if self.binary:
                target = torch.as_tensor(encoded, dtype=dtype, device=device).view(-1, 1)
            else:
                target = torch.as_tensor(encoded, dtype=torch.long, device=device)
        columns = 1 if self.binary else self.num_classes
        self.objective = _Objective(self.x, target, columns, self.sigmoid)
        self.columns_per_C = columns if self.sigmoid else 1

    def lam(self, Cs: Sequence[float]) -> torch.Tensor:
        """Per-problem penalty 1 / (C_eff n), C_eff = 2 C for binary problems."""
        factor = BINARY_C_FACTOR if self.sigmoid else 1.0
        values = [1.0 / (factor * C * self.x.shape[0]) for C in Cs]
        lam = torch.tensor(values, dtype=torch.float64, device=self.device)
        return lam.repeat_interleave(self.columns_per_C)

    def columns(self, num_Cs: int) -> torch.Tensor | None:
        if not self.sigmoid:
            return None
        return torch.arange(self.columns_per_C, device=self.device).repeat(num_Cs)

    def initial(self, num_Cs: int, warm_start_from: LinearModel | None) -> torch.Tensor:
        params = torch.zeros(
            (num_Cs * self.columns_per_C, self.objective.width),
            dtype=self.dtype,
            device=self.device,
        )
        if warm_start_from is not None:
            params[:] = self.pack(warm_start_from).repeat(num_Cs, 1)
        return params

    def pack(self, model: LinearModel) -> torch.Tensor:
        """Solver rows for ``model`` (inverse of ``unpack``)."""
        d = self.objective.d
        coef, intercept = np.asarray(model.coef_), np.asarray(model.intercept_)
        if coef.shape[1] != d:
            raise LogregError(f"warm_start_from has {coef.shape[1]} features, data have {d}")
        if self.sigmoid:
            if self.binary:
                coef, intercept = coef[1:], intercept[1:]
            if coef.shape[0] != self.columns_per_C:
                raise LogregError("warm_start_from has a different number of classes")
            rows = np.concatenate([2 * coef, 2 * intercept[:, None]], axis=1)
        else:
            if coef.shape[0] != self.num_classes:
                raise LogregError("warm_start_from has a different number of classes")
            rows = np.concatenate([coef.ravel(), intercept])[None]
        return torch.as_tensor(rows, dtype=self.dtype, device=self.device)

    def unpack(self, rows: torch.Tensor, n_iter: int, converged: bool) -> LinearModel:
        """The LinearModel of one C's rows (in the original's representation)."""
        rows = rows.double().cpu().numpy()
        d = self.objective.d
        if self.sigmoid:
            half_w, half_b = rows[:, :d] / 2, rows[:, d] / 2
            if self.binary:
                return LinearModel(
                    np.concatenate([-half_w, half_w]),
                    np.concatenate([-half_b, half_b]),
                    self.classes,
                    n_iter,
                    converged,
                )
            return LinearModel(half_w, half_b, None, n_iter, converged)
        k = self.num_classes
        row = rows[0]
        return LinearModel(
            row[: k * d].reshape(k, d).copy(), row[k * d :].copy(), self.classes, n_iter, converged
        )

    def solve_chain(
        self,
        Cs: Sequence[float],
        stopping: str,
        warm_start_from: LinearModel | None,
        progress: bool = False,
    ) -> list[LinearModel]:
        """The original's estimator: one fit per C (per C and class for sigmoid problems), in the
        given order, each from the previous fit, by scipy's L-BFGS-B with scikit-learn's options,
        so each fit stops where scikit-learn's did (``stopping``: see ``SKLEARN_STOPPING``)."""
        gtol = _sklearn_tol(stopping, self.objective.n)
        lam_all = self.lam(Cs).view(len(Cs), -1)
        row = self.initial(1, warm_start_from)[-1]  # a multilabel chain goes on from its last class
        models = []
        for index in tqdm(range(len(Cs)), desc="logreg C grid (torch chain)", disable=not progress):
            rows, n_iter, converged = [], 0, True
            for column in range(self.columns_per_C):
                lam = lam_all[index, column].view(1)
                columns = torch.tensor([column], device=self.device) if self.sigmoid else None

                def fun(params, lam=lam, columns=columns):
                    loss, grad = self.objective(params.view(1, -1), lam, columns)
                    return loss.item(), grad.view(-1)

                result = lbfgsb.minimize(
                    fun,
                    row,
                    max_iter=SKLEARN_MAX_ITER,
                    gtol=gtol,
                    ftol=SKLEARN_FTOL,
                    max_ls=SKLEARN_MAX_LS,
                )
                row = result.x
                rows.append(row)
                n_iter = max(n_iter, min(result.nit, SKLEARN_MAX_ITER))
                converged &= result.converged
            models.append(self.unpack(torch.stack(rows), n_iter, converged))
        return models

    def solve_path(
        self,
        Cs: Sequence[float],
        tol: float,
        max_iter: int,
        warm_start_from: LinearModel | None,
        history: int,
        progress: bool = False,
    ) -> list[LinearModel]:
        """Solve the Cs one after another, each from the previous solution and its curvature."""
        lam_all = self.lam(Cs).view(len(Cs), -1)
        columns = self.columns(1)
        params = self.initial(1, warm_start_from)
        state = _new_state(self.objective, params, lam_all[0], columns, history)
        models = []
        bar = tqdm(total=len(Cs), desc="logreg C path (torch)", disable=not progress)
        for index in range(len(Cs)):
            if index > 0:
                _change_penalty(state, self.objective.n_weights, lam_all[index - 1], lam_all[index])
            iterations, converged = _lbfgs(
                self.objective, state, lam_all[index], columns, tol, max_iter
            )
            model = self.unpack(state.params, int(iterations.max()), bool(converged.all()))
            models.append(model)
            bar.update(1)
        bar.close()
        return models

    def solve_batched(
        self,
        Cs: Sequence[float],
        tol: float,
        max_iter: int,
        warm_start_from: LinearModel | None,
        history: int,
        progress: bool = False,
    ) -> list[LinearModel]:
        """Solve all Cs as one batch of independent problems (one GEMM pair per iteration)."""
        lam = self.lam(Cs)
        columns = self.columns(len(Cs))
        params = self.initial(len(Cs), warm_start_from)
        state = _new_state(self.objective, params, lam, columns, history)
        bar = tqdm(total=max_iter, desc="logreg C grid (torch, batched)", disable=not progress)
        iterations, converged = _lbfgs(self.objective, state, lam, columns, tol, max_iter, bar)
        bar.close()
        per = self.columns_per_C
        return [
            self.unpack(
                state.params[i * per : (i + 1) * per],
                int(iterations[i * per : (i + 1) * per].max()),
                bool(converged[i * per : (i + 1) * per].all()),
            )
            for i in range(len(Cs))
        ]


# ----------------------------------------------------------------------------- public API


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
    history: int = 20,
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
    it started, so this makes the refit the same kind of model the grid scored. ``tol``,
    ``max_iter`` and ``history`` concern those strategies only; ``precision`` all torch ones.
    """
    x, y = _check_inputs(x, y, "training")
    dev = _check_solver(solver, device)
    if not C > 0:
        raise LogregError(f"C must be > 0, got {C}")
    if solver == "sklearn":
        return _SklearnChain(warm_start_from, sklearn_stopping).fit(x.astype(np.float64), y, C)
    problem = _TorchProblem(x, y, dev, _check_torch_options(strategy, precision))
    if strategy == "chain":
        return problem.solve_chain([C], sklearn_stopping, warm_start_from)[-1]
    steps = [C]
    if warm_start_from is None:
        grid = default_C_grid() if path_Cs is None else np.asarray(path_Cs, dtype=np.float64)
        steps = sorted(float(value) for value in grid if value < C) + [C]
    return problem.solve_path(steps, tol, max_iter, warm_start_from, history)[-1]


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
    history: int = 20,
    sklearn_stopping: str = "original",
) -> GridSearchResult:
    """Fit on train for every C (in the given order) and score on val; first best wins.

    ``strategy`` (torch only): ``"chain"`` makes the original's fits, as ``sklearn`` does, in
    torch (see ``_TorchProblem.solve_chain``): the same C, on any device. The converged
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
    iterations. ``max_iter`` caps each fit (torch).
    """
    train_x, train_y = _check_inputs(train_x, train_y, "training")
    val_x, val_y = _check_inputs(val_x, val_y, "validation")
    dev = _check_solver(solver, device)
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
    dtype = _check_torch_options(strategy, precision)

    start = time.perf_counter()
    scores: list[float] = []
    models: list[LinearModel] = []
    unconverged = 0

    def record(model: LinearModel) -> None:
        classes = None if model.multilabel else model.classes_
        scores.append(metrics.score(metric, val_y, model.decision_function(val_x), classes))
        models.append(model)

    if solver == "sklearn":
        chain = _SklearnChain(stopping=sklearn_stopping)
        train64 = train_x.astype(np.float64)
        for C in tqdm(Cs, desc="logreg C grid (sklearn)", disable=not progress):
            record(chain.fit(train64, train_y, C))
        unconverged = chain.convergence_warnings
        chosen = "sequential"
        counts = {"iterations": chain.iterations}
    else:
        problem = _TorchProblem(train_x, train_y, dev, dtype)
        chosen = strategy
        if chosen == "chain":
            for model in problem.solve_chain(Cs, sklearn_stopping, None, progress):
                record(model)
        elif chosen == "path":
            # Walk from the strongest penalty to the weakest: each solution is a close start for
            # the next, and the weakly regularised end (large C), the slowest to solve from
            # scratch, starts from a nearly fitted model; results go back in grid order.
            order = sorted(range(len(Cs)), key=lambda i: Cs[i])
            solved = problem.solve_path([Cs[i] for i in order], tol, max_iter, None, history,
                                        progress=progress)
            by_index = dict(zip(order, solved, strict=True))
            for index in range(len(Cs)):
                record(by_index[index])
        else:
            for model in problem.solve_batched(Cs, tol, max_iter, None, history, progress):
                record(model)
        unconverged = sum(not model.converged for model in models)
        counts = {
            "iterations": sum(model.n_iter for model in models),
            "evaluations": problem.objective.evaluations,
        }
    best = first_best(scores)
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
