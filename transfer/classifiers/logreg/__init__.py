"""The linear probe: L2-regularised logistic regression on frozen features, and its C search.

Two solvers behind one interface (``solve(Cs, warm_start_from) -> list[LinearModel]``):

- ``"sklearn"`` (``sklearn_chain.py``) reproduces the original: one warm-started scikit-learn
  ``LogisticRegression`` refit along the grid with the original's stopping rule, on the CPU.
- ``"torch"`` (``torch_solver.py`` on ``objective.py``) minimises the same objective on any
  device. Its default strategy, ``"chain"``, makes the sklearn solver's fits step for step
  (scipy's L-BFGS-B repeated in ``lbfgsb.py``), so it picks the original's C. The converged
  strategies ``"path"`` and ``"batched"`` (``batched_lbfgs.py``) solve every C to convergence
  instead: NOT the paper's protocol (``linear.py --strategy``; docs/protocols.md says how far
  they move).

``model.py`` holds the fitted head and the binary-problem convention shared by both; ``checks.py``
the options and input checks.
"""

from __future__ import annotations

from transfer.classifiers.logreg.checks import (
    DEFAULT_HISTORY,
    DEFAULT_TOL,
    ORIGINAL_TOL,
    PRECISIONS,
    SKLEARN_STOPPING,
    SOLVERS,
    STRATEGIES,
    TORCH_MAX_ITER,
)
from transfer.classifiers.logreg.fit import (
    GridSearchResult,
    default_C_grid,
    fit_logreg,
    fit_logreg_grid,
)
from transfer.classifiers.logreg.model import BINARY_C_FACTOR, LinearModel, LogregError
from transfer.classifiers.logreg.sklearn_chain import (
    SKLEARN_FTOL,
    SKLEARN_MAX_ITER,
    SKLEARN_MAX_LS,
)

__all__ = [
    "BINARY_C_FACTOR",
    "DEFAULT_HISTORY",
    "DEFAULT_TOL",
    "ORIGINAL_TOL",
    "PRECISIONS",
    "SKLEARN_FTOL",
    "SKLEARN_MAX_ITER",
    "SKLEARN_MAX_LS",
    "SKLEARN_STOPPING",
    "SOLVERS",
    "STRATEGIES",
    "TORCH_MAX_ITER",
    "GridSearchResult",
    "LinearModel",
    "LogregError",
    "default_C_grid",
    "fit_logreg",
    "fit_logreg_grid",
]
