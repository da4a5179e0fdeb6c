"""L-BFGS for many independent problems at once, the converged strategies' solver.

Written here rather than taken from ``torch.optim.LBFGS`` because it must solve many problems at
once with a line search each, carry curvature pairs from one C to the next, and accept steps by
the gradient once float32 losses stop resolving decreases. It stops, like scikit-learn, when the
largest gradient entry is <= ``tol``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm import tqdm

from transfer.classifiers.logreg import lbfgsb
from transfer.classifiers.logreg.objective import Objective

# Relative rounding level of a float32 loss summed in float64 (Hager & Zhang's epsilon).
_LOSS_NOISE = 1e-6


@dataclass
class LbfgsState:
    """Iterate, objective value/gradient and curvature history of each problem."""

    params: torch.Tensor  # (P, D)
    loss: torch.Tensor  # (P,) float64
    grad: torch.Tensor  # (P, D)
    s: torch.Tensor  # (m, P, D)
    y: torch.Tensor  # (m, P, D)
    rho: torch.Tensor  # (m, P) float64; 0 marks an empty or rejected pair
    gamma: torch.Tensor  # (P,) float64 initial inverse-Hessian scale
    slot: int = 0


def new_state(objective, params, lam, columns, history: int) -> LbfgsState:
    loss, grad = objective(params, lam, columns)
    zeros = torch.zeros((history, *params.shape), dtype=params.dtype, device=params.device)
    return LbfgsState(
        params=params,
        loss=loss,
        grad=grad,
        s=zeros,
        y=zeros.clone(),
        rho=torch.zeros((history, params.shape[0]), dtype=torch.float64, device=params.device),
        gamma=torch.zeros(params.shape[0], dtype=torch.float64, device=params.device),
    )


def change_penalty(state: LbfgsState, n_weights: int, old: torch.Tensor, new: torch.Tensor):
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


def search_direction(state: LbfgsState) -> torch.Tensor:
    """-H g for all problems at once, by the project's one two-loop recursion
    (``lbfgsb.two_loop``): the ring of pairs oldest first, empty pairs with rho = 0."""
    m = state.s.shape[0]
    oldest_first = [(state.slot + j) % m for j in range(m)]
    pairs = [(state.s[j], state.y[j], state.rho[j]) for j in oldest_first]
    no_history = state.gamma == 0
    # First step of a problem without curvature: a steepest-descent step of length 1 / ||g||.
    first_scale = 1.0 / state.grad.norm(dim=1).double().clamp_min(1e-30)
    scale = torch.where(no_history, first_scale, state.gamma)
    return lbfgsb.two_loop(-state.grad, pairs, scale)


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


def lbfgs(
    objective: Objective,
    state: LbfgsState,
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
        direction = search_direction(state)[idx]
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

