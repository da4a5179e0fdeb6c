"""scipy's L-BFGS-B without bounds, step for step, on torch tensors on any device.

The original's C choice is made by fits that stop early (scikit-learn's lbfgs capped at 100
iterations, warm-started along the grid), so a solver that runs to convergence picks another C.
To reproduce the original on a GPU, this module repeats scipy's algorithm exactly rather than
using ``torch.optim.LBFGS``, whose line search, first step, memory update and stopping rules all
differ: the first step has length 1 (``1 / ||g||`` times ``-g``), the direction is the L-BFGS
two-loop recursion with ``H0 = I / theta`` (for unbounded variables this equals L-BFGS-B's compact
form and subspace step), the line search is MINPACK-2's ``dcsrch`` (More and Thuente) with
L-BFGS-B's constants, a pair is skipped when ``s'y <= eps * (-g'd)``, a failed line search resets
the memory, and a run stops on ``max |g| <= gtol``, on the relative reduction ``ftol``, or after
``max_iter`` iterations. Iterates match scipy's to rounding in float64 (tests/transfer/
classifiers/test_lbfgsb.py); in float32 they drift slowly, and dot products are summed in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

# L-BFGS-B's line search constants (lnsrlb) and its bound on the step.
LS_FTOL, LS_GTOL, LS_XTOL = 1e-3, 0.9, 0.1
STEP_MAX = 1e10
EPS = torch.finfo(torch.float64).eps  # L-BFGS-B's machine epsilon, whatever the storage dtype

STATUS = (
    "converged: max |g| <= gtol",
    "converged: relative reduction <= ftol",
    "stopped: max_iter reached",
    "stopped: line search failed",
)


@dataclass
class MinimizeResult:
    """Where a run stopped. ``status`` indexes ``STATUS`` (0 and 1: converged)."""

    x: torch.Tensor
    f: float
    g: torch.Tensor
    nit: int
    nfev: int
    status: int

    @property
    def converged(self) -> bool:
        return self.status in (0, 1)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Dot product summed in float64 whatever the storage dtype."""
    if a.dtype != torch.float64:
        a, b = a.double(), b.double()
    return torch.dot(a, b)


class LineSearch:
    """MINPACK-2's dcsrch: a step satisfying the strong Wolfe conditions, by safeguarded cubic and
    quadratic interpolation (More & Thuente 1994). Written from the published algorithm; build it
    with f(0), f'(0) and a first step, then call ``next`` with f and f' at each step until it
    returns None (the last step is accepted: converged, or a warning, as L-BFGS-B accepts both)."""

    def __init__(self, f0: float, g0: float, step: float, step_max: float) -> None:
        self.finit, self.ginit = f0, g0
        self.gtest = LS_FTOL * g0
        self.step_min, self.step_max = 0.0, step_max
        self.width = step_max
        self.width1 = 2 * step_max
        self.stx, self.fx, self.gx = 0.0, f0, g0
        self.sty, self.fy, self.gy = 0.0, f0, g0
        self.stmin, self.stmax = 0.0, step + 4.0 * step
        self.bracketed = False
        self.stage = 1

    def next(self, step: float, f: float, g: float) -> float | None:
        """The next step to evaluate, or None when ``step`` is accepted."""
        ftest = self.finit + step * self.gtest
        if self.stage == 1 and f <= ftest and g >= 0:
            self.stage = 2
        done = (
            (self.bracketed and (step <= self.stmin or step >= self.stmax))
            or (self.bracketed and self.stmax - self.stmin <= LS_XTOL * self.stmax)
            or (step == self.step_max and f <= ftest and g <= self.gtest)
            or (step == self.step_min and (f > ftest or g >= self.gtest))
            or (f <= ftest and abs(g) <= LS_GTOL * -self.ginit)
        )
        if done:
            return None
        if self.stage == 1 and self.fx >= f > ftest:
            # the modified function psi(t) = f(t) - f(0) - ftol t f'(0) guides the first stage
            gt = self.gtest
            (self.stx, fx, gx, self.sty, fy, gy, step, self.bracketed) = _interpolate(
                self.stx,
                self.fx - self.stx * gt,
                self.gx - gt,
                self.sty,
                self.fy - self.sty * gt,
                self.gy - gt,
                step,
                f - step * gt,
                g - gt,
                self.bracketed,
                self.stmin,
                self.stmax,
            )
            self.fx, self.fy = fx + self.stx * gt, fy + self.sty * gt
            self.gx, self.gy = gx + gt, gy + gt
        else:
            (self.stx, self.fx, self.gx, self.sty, self.fy, self.gy, step, self.bracketed) = (
                _interpolate(
                    self.stx,
                    self.fx,
                    self.gx,
                    self.sty,
                    self.fy,
                    self.gy,
                    step,
                    f,
                    g,
                    self.bracketed,
                    self.stmin,
                    self.stmax,
                )
            )
        if self.bracketed:
            if abs(self.sty - self.stx) >= 0.66 * self.width1:
                step = self.stx + 0.5 * (self.sty - self.stx)
            self.width1, self.width = self.width, abs(self.sty - self.stx)
            self.stmin, self.stmax = min(self.stx, self.sty), max(self.stx, self.sty)
        else:
            self.stmin = step + 1.1 * (step - self.stx)
            self.stmax = step + 4.0 * (step - self.stx)
        step = min(max(step, self.step_min), self.step_max)
        if self.bracketed and (
            step <= self.stmin
            or step >= self.stmax
            or self.stmax - self.stmin <= LS_XTOL * self.stmax
        ):
            step = self.stx
        return step


def _cubic_gamma(theta: float, da: float, db: float, clamp: bool = False) -> float:
    s = max(abs(theta), abs(da), abs(db))
    inside = (theta / s) ** 2 - (da / s) * (db / s)
    return s * math.sqrt(max(0.0, inside) if clamp else inside)


def _cubic_minimiser(stp, fp, dp, other, fo, do):
    """Minimiser of the cubic through (stp, fp, dp) and (other, fo, do), as dcstep rounds it."""
    theta = 3.0 * (fo - fp) / (stp - other) + do + dp
    gamma = _cubic_gamma(theta, do, dp)
    if stp > other:
        gamma = -gamma
    r = ((gamma - dp) + theta) / (((gamma - dp) + gamma) + do)
    return stp + r * (other - stp)


def _interpolate(stx, fx, dx, sty, fy, dy, stp, fp, dp, bracketed, stpmin, stpmax):
    """MINPACK-2's dcstep: a safeguarded step and the updated interval of uncertainty."""
    opposite = (dp > 0) != (dx > 0) and dp != 0 and dx != 0
    if fp > fx:  # higher value: the minimum is bracketed
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        gamma = _cubic_gamma(theta, dx, dp)
        if stp < stx:
            gamma = -gamma
        r = ((gamma - dx) + theta) / (((gamma - dx) + gamma) + dp)
        stpc = stx + r * (stp - stx)
        stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
        stpf = stpc if abs(stpc - stx) <= abs(stpq - stx) else stpc + (stpq - stpc) / 2.0
        bracketed = True
    elif opposite:  # derivatives of opposite sign: bracketed
        stpc = _cubic_minimiser(stp, fp, dp, stx, fx, dx)
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
        bracketed = True
    elif abs(dp) < abs(dx):  # same sign, derivative decreasing in magnitude
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        gamma = _cubic_gamma(theta, dx, dp, clamp=True)
        if stp > stx:
            gamma = -gamma
        r = ((gamma - dp) + theta) / ((gamma + (dx - dp)) + gamma)
        if r < 0 and gamma != 0:
            stpc = stp + r * (stx - stp)
        elif stp > stx:
            stpc = stpmax
        else:
            stpc = stpmin
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        if bracketed:
            stpf = stpc if abs(stpc - stp) < abs(stpq - stp) else stpq
            bound = stp + 0.66 * (sty - stp)
            stpf = min(bound, stpf) if stp > stx else max(bound, stpf)
        else:
            stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
            stpf = min(max(stpf, stpmin), stpmax)
    elif bracketed:  # same sign, not decreasing: cubic through stp and sty
        stpf = _cubic_minimiser(stp, fp, dp, sty, fy, dy)
    else:
        stpf = stpmax if stp > stx else stpmin
    if fp > fx:
        sty, fy, dy = stp, fp, dp
    else:
        if opposite:
            sty, fy, dy = stx, fx, dx
        stx, fx, dx = stp, fp, dp
    return stx, fx, dx, sty, fy, dy, stpf, bracketed


def minimize(
    fun: Callable[[torch.Tensor], tuple[float, torch.Tensor]],
    x0: torch.Tensor,
    *,
    max_iter: int,
    gtol: float,
    ftol: float,
    max_ls: int = 20,
    history: int = 10,
) -> MinimizeResult:
    """Minimise ``fun`` (x -> (f, grad)) from ``x0`` (1-d) as ``scipy.optimize.minimize(...,
    method="L-BFGS-B", options=dict(maxiter, gtol, ftol, maxls, maxcor=history))`` does without
    bounds. ``nit`` counts iterations as scipy's ``nit``."""
    x = x0.clone()
    f, g = fun(x)
    nfev = 1
    if g.abs().max().item() <= gtol:
        return MinimizeResult(x, f, g, 0, nfev, 0)
    pairs: list[tuple[torch.Tensor, torch.Tensor, float]] = []  # (s, y, 1 / s'y), float64
    theta = 1.0
    nit = 0
    while True:
        direction = _direction(g, pairs, theta)
        gd = _dot(g, direction).item()
        step = min(1.0 / _dot(direction, direction).sqrt().item(), STEP_MAX) if nit == 0 else 1.0
        f_old, g_old, x_old, gd_old = f, g, x, gd
        failed = gd >= 0  # not a descent direction: no line search is possible
        if not failed:
            search = LineSearch(f, gd, step, STEP_MAX)
            evaluations = 0
            while True:
                evaluations += 1
                if evaluations > max_ls:
                    failed = True
                    break
                x = x_old + step * direction
                f, g = fun(x)
                nfev += 1
                gd = _dot(g, direction).item()
                next_step = search.next(step, f, gd)
                if next_step is None:
                    break
                step = next_step
        if failed:
            x, f, g = x_old, f_old, g_old
            if not pairs:
                return MinimizeResult(x, f, g, nit, nfev, 3)
            pairs, theta = [], 1.0  # forget the curvature and restart from steepest descent
            continue
        nit += 1
        if nit >= max_iter:
            return MinimizeResult(x, f, g, nit, nfev, 2)
        if g.abs().max().item() <= gtol:
            return MinimizeResult(x, f, g, nit, nfev, 0)
        if f_old - f <= ftol * max(abs(f_old), abs(f), 1.0):
            return MinimizeResult(x, f, g, nit, nfev, 1)
        curvature = (gd - gd_old) * step  # s'y, as L-BFGS-B computes it
        if curvature <= EPS * (-gd_old * step):
            continue  # skip the update, keep the memory
        s, y = step * direction.double(), g.double() - g_old.double()
        theta = _dot(y, y).item() / curvature
        pairs.append((s, y, 1.0 / curvature))  # a float: no host-to-device copy per iteration
        if len(pairs) > history:
            pairs.pop(0)


def _direction(g: torch.Tensor, pairs, theta: float) -> torch.Tensor:
    """-H g by the two-loop recursion with H0 = I / theta (the compact form's inverse)."""
    q = g.double() if g.dtype != torch.float64 else g.clone()
    return (-two_loop(q, pairs, 1.0 / theta)).to(g.dtype)


def two_loop(q: torch.Tensor, pairs: Sequence[tuple], scale: torch.Tensor | float) -> torch.Tensor:
    """``H q`` by the L-BFGS two-loop recursion with ``H0 = scale * I``, in place on ``q``.

    The one recursion of the project: this module's single problem (``q`` of shape (D,), floats
    for ``rho`` and ``scale``) and the batched solver of ``classifiers.logreg`` (P problems, ``q``
    (P, D), ``rho`` and ``scale`` (P,) float64 tensors) both use it. ``pairs`` run oldest first,
    each ``(s, y, rho = 1 / s'y)``; a pair with ``rho`` 0 is empty. Dot products are summed in
    float64 whatever the storage dtype.
    """
    alphas = []
    for s, y, rho in reversed(pairs):
        alpha = rho * _dots(s, q)
        q -= _as_column(alpha, q) * y
        alphas.append(alpha)
    q *= _as_column(scale, q)
    for (s, y, rho), alpha in zip(pairs, reversed(alphas), strict=True):
        beta = rho * _dots(y, q)
        q += _as_column(alpha - beta, q) * s
    return q


def _dots(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products summed in float64 (one problem: ``torch.dot``, as scipy's BLAS)."""
    if a.dim() == 1:
        return _dot(a, b)
    return (a * b).sum(-1, dtype=torch.float64)


def _as_column(value: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor | float:
    """A per-problem factor shaped to scale the rows of ``like`` (a float stays a float)."""
    if isinstance(value, torch.Tensor):
        return value.to(like.dtype).unsqueeze(-1)
    return value
