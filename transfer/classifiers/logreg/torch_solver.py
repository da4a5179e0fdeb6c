"""The ``"torch"`` solver: the same objective as current scikit-learn (checked on 1.9),
``mean_i loss_i + ||W||^2 / (2 C n)`` (intercept unpenalised), on any device.

Its default strategy, ``"chain"``, makes the sklearn solver's fits: the same sequence of
warm-started fits, each by scipy's L-BFGS-B repeated step for step
(``transfer/classifiers/logreg/lbfgsb.py``) with scikit-learn's options, in float64. Most of the
original's fits stop at the 100-iteration cap, and its C is chosen among their val scores, so only
the same capped fits give the same C; a solver run to convergence picks another. The converged
strategies (``"path"``, ``"batched"``, float32, ``batched_lbfgs.py``) stop, like scikit-learn, when
the largest gradient entry is <=
``tol``: they are not the paper's protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch

from transfer.classifiers.logreg import lbfgsb
from transfer.classifiers.logreg.batched_lbfgs import change_penalty, lbfgs, new_state
from transfer.classifiers.logreg.checks import sklearn_tol
from transfer.classifiers.logreg.model import BINARY_C_FACTOR, LinearModel, LogregError
from transfer.classifiers.logreg.objective import Objective
from transfer.classifiers.logreg.sklearn_chain import SKLEARN_FTOL, SKLEARN_MAX_ITER, SKLEARN_MAX_LS
from transfer.console import progress as progress_bar

logger = logging.getLogger(__name__)


class TorchProblem:
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
        self.objective = Objective(self.x, target, columns, self.sigmoid)
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
        gtol = sklearn_tol(stopping, self.objective.n)
        lam_all = self.lam(Cs).view(len(Cs), -1)
        row = self.initial(1, warm_start_from)[-1]  # a multilabel chain goes on from its last class
        models = []
        for index in progress_bar(range(len(Cs)), desc="logreg C grid (torch chain)",
                                  enabled=progress):
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
        state = new_state(self.objective, params, lam_all[0], columns, history)
        models = []
        bar = progress_bar(total=len(Cs), desc="logreg C path (torch)", enabled=progress)
        for index in range(len(Cs)):
            if index > 0:
                change_penalty(state, self.objective.n_weights, lam_all[index - 1], lam_all[index])
            iterations, converged = lbfgs(
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
        state = new_state(self.objective, params, lam, columns, history)
        bar = progress_bar(total=max_iter, desc="logreg C grid (torch, batched)",
                           enabled=progress)
        iterations, converged = lbfgs(self.objective, state, lam, columns, tol, max_iter, bar)
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



class TorchSolver:
    """The solver interface of ``fit_logreg_grid`` over one ``TorchProblem``: ``solve`` by the
    chosen strategy, and val scores computed on the device (45 float64 GEMMs of the val set on
    the CPU cost more than a GPU's whole chain on small sets)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, device: torch.device, dtype: torch.dtype,
                 strategy: str, stopping: str, tol: float, max_iter: int, history: int,
                 progress: bool = False) -> None:
        warn_if_float64_is_slow(device, dtype)
        self.problem = TorchProblem(x, y, device, dtype)
        self.strategy, self.stopping = strategy, stopping
        self.tol, self.max_iter, self.history, self.progress = tol, max_iter, history, progress

    def solve(
        self, Cs: Sequence[float], warm_start_from: LinearModel | None = None
    ) -> list[LinearModel]:
        problem, progress = self.problem, self.progress
        if self.strategy == "chain":
            return problem.solve_chain(Cs, self.stopping, warm_start_from, progress)
        if self.strategy == "batched":
            return problem.solve_batched(Cs, self.tol, self.max_iter, warm_start_from,
                                         self.history, progress)
        # Walk from the strongest penalty to the weakest: each solution is a close start for the
        # next, and the weakly regularised end (large C), the slowest to solve from scratch,
        # starts from a nearly fitted model; results go back in the given order.
        order = sorted(range(len(Cs)), key=lambda i: Cs[i])
        solved = problem.solve_path([Cs[i] for i in order], self.tol, self.max_iter,
                                    warm_start_from, self.history, progress)
        by_index = dict(zip(order, solved, strict=True))
        return [by_index[i] for i in range(len(Cs))]

    def decision_values(self, x: np.ndarray) -> Callable[[LinearModel], np.ndarray]:
        """A function giving a model's decision values on ``x``, computed on the device in the
        solver's dtype (``x`` moves there once); only the (n, classes) result comes back."""
        features = torch.as_tensor(np.ascontiguousarray(x), dtype=self.problem.dtype,
                                   device=self.problem.device)

        def decide(model: LinearModel) -> np.ndarray:
            coef, intercept = (torch.as_tensor(value, dtype=features.dtype, device=features.device)
                               for value in (model.coef_, model.intercept_))
            return torch.addmm(intercept, features, coef.T).double().cpu().numpy()

        return decide

    def counts(self, models: Sequence[LinearModel]) -> tuple[int, dict]:
        """(unconverged fits, details) of the last ``solve``."""
        return sum(not model.converged for model in models), {
            "iterations": sum(model.n_iter for model in models),
            "evaluations": self.problem.objective.evaluations,
        }


# Compute capabilities of the data-centre GPUs with fast float64 (about half their float32 rate):
# P100 (6.0), V100 (7.0), A100 (8.0), H100/H200 (9.0), B100/B200 (10.0). Every other CUDA GPU
# (GeForce, RTX workstation cards, T4, A10/A40, L4/L40, B300 ...) runs float64 at 1/32-1/64 of
# its float32 rate.
FAST_FLOAT64_CAPABILITIES = frozenset({(6, 0), (7, 0), (8, 0), (9, 0), (10, 0)})
_warned_devices: set[str] = set()


def warn_if_float64_is_slow(device: torch.device, dtype: torch.dtype) -> bool:
    """Say once per device, on a CUDA GPU with slow float64, that the chain runs in float64
    and that the CPU's sklearn solver may be faster there; True if it warned."""
    if device.type != "cuda" or dtype != torch.float64:
        return False
    capability = tuple(torch.cuda.get_device_capability(device))
    name = torch.cuda.get_device_name(device)
    if capability in FAST_FLOAT64_CAPABILITIES or name in _warned_devices:
        return False
    _warned_devices.add(name)
    logger.warning(
        "--solver torch runs the original's chain of fits in float64, which %s (compute "
        "capability %d.%d) computes at a small fraction of its float32 speed; --solver sklearn "
        "(CPU) may be faster here", name, capability[0], capability[1])
    return True
