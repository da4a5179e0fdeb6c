"""The logistic-regression objective the torch solvers minimise, for many problems at once:
mean logistic loss + lam/2 ||W||^2 (intercept unpenalised), as current scikit-learn's."""

from __future__ import annotations

import torch


class Objective:
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
