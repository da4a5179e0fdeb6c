"""The ``"sklearn"`` solver: the original's single warm-started ``LogisticRegression``.

One ``LogisticRegression(solver="lbfgs", warm_start=True)`` with ``max_iter`` 100, refit along the
grid in its order, each fit starting from the previous one, and the original's stopping rule (tol
1e-4 on scikit-learn 0.22's unscaled objective, i.e. ``tol = 1e-4 / n`` today: see
``SKLEARN_STOPPING``; 0.22 also stopped on scipy's default relative reduction, 2.2e-9, which
today's scikit-learn fixes at 64 eps, so a fit can run a few iterations longer than the
original's did). Features are cast to float64, as 0.22 did for lbfgs (scikit-learn >= 1.x would
keep float32). Multinomial is what scikit-learn >= 1.8 does for 3+ classes (``multi_class`` is
gone).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from transfer.classifiers.logreg.checks import check_stopping, sklearn_tol
from transfer.classifiers.logreg.model import BINARY_C_FACTOR, LinearModel
from transfer.console import progress

# What installed scikit-learn passes to scipy's L-BFGS-B (checked on 1.9): the torch chain
# repeats its fits with the same options.
SKLEARN_MAX_ITER = 100
SKLEARN_FTOL = 64 * np.finfo(float).eps
SKLEARN_MAX_LS = 50
# A fit whose data pass (n x d x classes multiply-adds per GEMM) is smaller than this runs all
# its BLAS and OpenMP on one thread. Such GEMMs take milliseconds, and a multi-threaded call
# waits for every worker: when another process holds a core, a worker gets it back only after a
# scheduler time slice, so each call (and L-BFGS-B's vector operations) cost ~10 ms and a
# digits-sized grid ran 5-15x slower (benchmarks/contention_bench.py). Larger fits keep numpy's
# threads, whose GEMMs then gain more than a stall costs.
THREADED_WORK = 2e8


def _thread_pools():
    """(every BLAS and OpenMP pool, scipy's own BLAS) as threadpoolctl controllers.

    scipy's wheel ships its own BLAS beside the package (``scipy.libs``): it serves only L-BFGS-B's
    vector operations, too small to gain from threads, and its idle workers spun beside numpy's
    GEMM threads (on 2 cores the original's grid on digits took ~100 s against 13 s), so it always
    runs one thread. Where scipy shares numpy's BLAS (e.g. conda) that controller is empty.
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
    return controller, controller.select(filepath=paths)


class SklearnChain:
    """The original's single warm-started estimator, refit for each (C, class) in turn."""

    def __init__(
        self, warm_start_from: LinearModel | None = None, stopping: str = "original"
    ) -> None:
        from sklearn.linear_model import LogisticRegression

        check_stopping(stopping)
        self.stopping = stopping
        self.estimator = LogisticRegression(solver="lbfgs", warm_start=True)
        self.all_pools, self.scipy_blas = _thread_pools()
        self.convergence_warnings = 0
        self.iterations = 0
        if warm_start_from is not None:
            coef, intercept = _binary_or_multinomial_state(warm_start_from)
            self.estimator.coef_ = coef
            self.estimator.intercept_ = intercept

    def _threads(self, x: np.ndarray, columns: int):
        """The thread limits of one fit (see ``THREADED_WORK``)."""
        if x.shape[0] * x.shape[1] * columns < THREADED_WORK:
            return self.all_pools.limit(limits=1)
        return self.scipy_blas.limit(limits=1)

    def _fit(self, x: np.ndarray, y: np.ndarray, C: float, columns: int) -> None:
        from sklearn.exceptions import ConvergenceWarning

        tol = sklearn_tol(self.stopping, len(x))
        self.estimator.set_params(C=C, tol=tol)
        with warnings.catch_warnings(record=True) as caught, self._threads(x, columns):
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
                self._fit(x, y[:, column], BINARY_C_FACTOR * C, 1)
                rows.append(self.estimator.coef_[0] / 2)
                intercepts.append(self.estimator.intercept_[0] / 2)
                n_iter = max(n_iter, self.last_n_iter)
            return LinearModel(np.stack(rows), np.asarray(intercepts), None, n_iter)
        classes = np.unique(y)
        if classes.size == 2:
            self._fit(x, y, BINARY_C_FACTOR * C, 1)
            half = self.estimator.coef_[0] / 2
            half_b = self.estimator.intercept_[0] / 2
            return LinearModel(
                np.stack([-half, half]), np.array([-half_b, half_b]), classes, self.last_n_iter
            )
        self._fit(x, y, C, classes.size)
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


class SklearnSolver:
    """The solver interface of ``fit_logreg_grid`` over one ``SklearnChain``: ``solve`` fits
    the Cs in order, each from the previous fit; scores are computed on the CPU."""

    def __init__(
        self, x: np.ndarray, y: np.ndarray, stopping: str = "original", progress: bool = False
    ) -> None:
        check_stopping(stopping)
        self.x, self.y = x.astype(np.float64), y
        self.stopping, self.progress = stopping, progress
        self.chain: SklearnChain | None = None

    def solve(
        self, Cs: Sequence[float], warm_start_from: LinearModel | None = None
    ) -> list[LinearModel]:
        self.chain = SklearnChain(warm_start_from, self.stopping)
        bar = progress(Cs, desc="logreg C grid (sklearn)", enabled=self.progress)
        return [self.chain.fit(self.x, self.y, C) for C in bar]

    def decision_values(self, x: np.ndarray) -> Callable[[LinearModel], np.ndarray]:
        """A function giving a model's decision values on ``x`` (on the CPU, in float64)."""
        return lambda model: model.decision_function(x)

    def counts(self, models: Sequence[LinearModel]) -> tuple[int, dict]:
        """(unconverged fits, details) of the last ``solve``."""
        return self.chain.convergence_warnings, {"iterations": self.chain.iterations}
