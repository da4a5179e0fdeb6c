"""The fitted head both solvers return, and the one error class of the linear probe.

Binary problems (one per class for VOC's mAP): the original passed ``multi_class="multinomial"``,
so scikit-learn 0.22 fitted a two-class softmax with both weight rows penalised. Its optimum has
rows (-w/2, w/2) where w is the binary logistic regression with C doubled, and ``coef_`` held
w/2. Both solvers therefore fit binary problems with ``2 C`` and store w/2, which reproduces the
original's objective and decision values; the reported C stays the grid's C.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transfer.errors import TransferError

# The original fitted a binary problem as a two-class softmax: see the module docstring.
BINARY_C_FACTOR = 2.0


class LogregError(TransferError, ValueError):
    """Bad input to the linear probe (shapes, labels, solver, device)."""


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
