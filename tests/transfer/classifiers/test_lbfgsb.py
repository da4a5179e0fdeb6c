"""transfer/classifiers/logreg/lbfgsb.py against scipy's own L-BFGS-B: same iterations, evaluations
and iterates."""

import numpy as np
import pytest
import scipy.optimize
import torch

from transfer.classifiers.logreg import lbfgsb

FTOL = 64 * np.finfo(float).eps  # what scikit-learn passes


def _scipy(fun, x0, **options):
    return scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", options=options)


def _torch_fun(fun):
    def wrapped(x):
        f, g = fun(x.numpy())
        return float(f), torch.as_tensor(g, dtype=x.dtype)

    return wrapped


def rosenbrock(x):
    return scipy.optimize.rosen(x), scipy.optimize.rosen_der(x)


def logistic_problem(seed=0, n=200, d=30, lam=1e-3):
    """An ill-conditioned L2 logistic regression (mean loss), as the linear probe minimises."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * np.logspace(0, 2, d)
    y = (x @ rng.normal(size=d) + rng.normal(size=n) > 0).astype(float)

    def fun(w):
        z = x @ w
        loss = np.mean(np.logaddexp(0, z) - y * z) + 0.5 * lam * w @ w
        grad = x.T @ (1 / (1 + np.exp(-z)) - y) / n + lam * w
        return loss, grad

    return fun, d


@pytest.mark.parametrize("n", [2, 5, 20])
@pytest.mark.parametrize("max_iter", [10, 40])
def test_rosenbrock_iterates_match_scipy_step_for_step(n, max_iter):
    x0 = np.linspace(-1.5, 1.2, n)
    reference = _scipy(rosenbrock, x0, maxiter=max_iter, gtol=1e-8, ftol=FTOL, maxls=50)
    ours = lbfgsb.minimize(
        _torch_fun(rosenbrock), torch.tensor(x0), max_iter=max_iter, gtol=1e-8, ftol=FTOL, max_ls=50
    )
    assert (ours.nit, ours.nfev) == (reference.nit, reference.nfev)
    np.testing.assert_allclose(ours.x.numpy(), reference.x, rtol=0, atol=1e-8)
    assert ours.status == 2 and not ours.converged  # stopped by max_iter, as scipy's status 1


# rounding differences grow along an ill-conditioned run (condition number ~1e4 here)
@pytest.mark.parametrize(("max_iter", "rtol"), [(5, 1e-9), (25, 1e-7), (100, 1e-4)])
def test_capped_logistic_fit_matches_scipy(max_iter, rtol):
    fun, d = logistic_problem()
    reference = _scipy(fun, np.zeros(d), maxiter=max_iter, gtol=1e-10, ftol=FTOL, maxls=50)
    ours = lbfgsb.minimize(
        _torch_fun(fun),
        torch.zeros(d, dtype=torch.float64),
        max_iter=max_iter,
        gtol=1e-10,
        ftol=FTOL,
        max_ls=50,
    )
    assert (ours.nit, ours.nfev) == (reference.nit, reference.nfev)
    np.testing.assert_allclose(ours.x.numpy(), reference.x, rtol=rtol, atol=1e-10)


def test_converges_on_gtol_and_reports_it():
    fun, d = logistic_problem(seed=1)
    reference = _scipy(fun, np.zeros(d), maxiter=1000, gtol=1e-6, ftol=FTOL)
    ours = lbfgsb.minimize(
        _torch_fun(fun), torch.zeros(d, dtype=torch.float64), max_iter=1000, gtol=1e-6, ftol=FTOL
    )
    assert reference.status == 0 and ours.converged and ours.status == 0
    assert abs(ours.nit - reference.nit) <= 0.05 * reference.nit  # rounding near the end
    assert np.abs(ours.g.numpy()).max() <= 1e-6
    np.testing.assert_allclose(ours.x.numpy(), reference.x, rtol=0, atol=1e-4)


def test_a_start_that_already_meets_gtol_makes_no_iteration():
    fun, d = logistic_problem(seed=2)
    solved = _scipy(fun, np.zeros(d), maxiter=1000, gtol=1e-9, ftol=0).x
    ours = lbfgsb.minimize(
        _torch_fun(fun), torch.tensor(solved), max_iter=100, gtol=1e-6, ftol=FTOL
    )
    assert (ours.nit, ours.nfev, ours.status) == (0, 1, 0)


def test_nonsmooth_function_ends_like_scipy():
    """|x|-like kinks make line searches fail: the memory is reset, then scipy gives up."""

    def fun(x):
        return np.abs(x).sum() + 0.01 * x @ x, np.sign(x) + 0.02 * x

    x0 = np.array([1.0, -2.0, 3.0])
    reference = _scipy(fun, x0, maxiter=100, gtol=1e-12, ftol=FTOL, maxls=20)
    ours = lbfgsb.minimize(
        _torch_fun(fun), torch.tensor(x0), max_iter=100, gtol=1e-12, ftol=FTOL, max_ls=20
    )
    assert ours.nit == reference.nit
    np.testing.assert_allclose(ours.x.numpy(), reference.x, atol=1e-9)


def test_float32_reaches_the_same_minimum():
    fun, d = logistic_problem(seed=3)
    reference = _scipy(fun, np.zeros(d), maxiter=1000, gtol=1e-9, ftol=0)
    ours = lbfgsb.minimize(
        _torch_fun(fun), torch.zeros(d, dtype=torch.float32), max_iter=1000, gtol=1e-5, ftol=FTOL
    )
    assert ours.x.dtype == torch.float32
    gap = fun(ours.x.double().numpy())[0] - reference.fun
    assert 0 <= gap <= 1e-4 * reference.fun  # from f(0) = log 2 = 0.69


def test_no_tensor_is_built_from_a_host_scalar_per_iteration(monkeypatch):
    """The memory keeps 1 / s'y as a float: torch.tensor(..., device=...) was a blocking
    host-to-device copy on every iteration of a GPU run (issue 17)."""
    fun, d = logistic_problem()
    made = []
    tensor = torch.tensor

    def counting_tensor(*args, **kwargs):
        made.append(args)
        return tensor(*args, **kwargs)

    monkeypatch.setattr(torch, "tensor", counting_tensor)
    ours = lbfgsb.minimize(
        _torch_fun(fun), torch.zeros(d, dtype=torch.float64), max_iter=25, gtol=1e-10, ftol=FTOL
    )
    assert ours.nit == 25 and made == []


def test_the_two_loop_recursion_of_a_batch_equals_each_problem_alone():
    """One recursion serves one problem (this module) and P problems (the batched logreg
    solver): rows of a batch give what each row gives alone, empty pairs (rho 0) change nothing."""
    rng = np.random.default_rng(0)
    p, dim, m = 3, 7, 4
    s = torch.tensor(rng.normal(size=(m, p, dim)))
    y = s + 0.1 * torch.tensor(rng.normal(size=(m, p, dim)))
    rho = 1.0 / (s * y).sum(-1)
    rho[0, 1] = 0.0  # an empty pair for problem 1
    q = torch.tensor(rng.normal(size=(p, dim)))
    scale = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    batch = lbfgsb.two_loop(q.clone(), [(s[j], y[j], rho[j]) for j in range(m)], scale)
    for i in range(p):
        pairs = [(s[j, i], y[j, i], float(rho[j, i])) for j in range(m) if rho[j, i] != 0]
        alone = lbfgsb.two_loop(q[i].clone(), pairs, float(scale[i]))
        torch.testing.assert_close(batch[i], alone, rtol=1e-12, atol=1e-12)
    # against the dense inverse-Hessian update H <- (I - rho s y')H(I - rho y s') + rho s s'
    h = float(scale[0]) * np.eye(dim)
    for j in range(m):
        sj, yj, r = s[j, 0].numpy(), y[j, 0].numpy(), float(rho[j, 0])
        v = np.eye(dim) - r * np.outer(yj, sj)
        h = v.T @ h @ v + r * np.outer(sj, sj)
    np.testing.assert_allclose(batch[0].numpy(), h @ q[0].numpy(), rtol=1e-10)
