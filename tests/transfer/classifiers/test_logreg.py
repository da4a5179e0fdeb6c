"""transfer.logreg: the sklearn path against a direct scikit-learn loop, the torch solver against
scikit-learn and against an independent scipy fit of the original's two-class softmax."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from sklearn.linear_model import LogisticRegression

from benchmarks.logreg_bench import make_realistic_features
from transfer.classifiers import logreg
from transfer.stats import metrics


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small problems run fastest on one thread, and a busy 2-core machine makes spinning BLAS /
    OpenMP thread teams 10-100x slower; restore the settings afterwards."""
    import sklearn.linear_model  # noqa: F401  (load its OpenMP runtime so the limit reaches it)
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return make_realistic_features(
        n_train=1200, n_val=600, n_test=600, dim=96, num_classes=8, separation=0.3, seed=3
    )


def voc_like(data):
    """VOC-like targets: each sample is positive for its class and, at random, a neighbour."""
    rng = np.random.default_rng(0)

    def targets(labels):
        y = np.zeros((len(labels), 5), dtype=np.int64)
        y[np.arange(len(labels)), labels % 5] = 1
        extra = rng.random(len(labels)) < 0.3
        y[np.flatnonzero(extra), (labels[extra] + 1) % 5] = 1
        return y

    return {split: (x, targets(y)) for split, (x, y) in data.items()}


@pytest.fixture(scope="module")
def multilabel(data):
    return voc_like(data)


@pytest.fixture(scope="module")
def overlapping():
    """Classes that overlap in few dimensions: no fit separates them, so even the capped fits at
    C = 1e6 stay well conditioned and two implementations give the same iterates to rounding."""
    return make_realistic_features(
        n_train=1000, n_val=400, n_test=400, dim=24, num_classes=6, separation=0.25, seed=3
    )


@pytest.fixture(scope="module")
def separable():
    """Classes that a linear model separates at C = 1e6 (64 dimensions, 400 samples) but that
    overlap on val: the capped early fits are ill-conditioned, the later ones converge."""
    return make_realistic_features(
        n_train=400, n_val=300, n_test=10, dim=64, num_classes=5, separation=0.3, seed=3
    )


def test_default_grid_is_the_originals():
    grid = logreg.default_C_grid()
    assert grid.shape == (45,)
    expected = [1.0 / wd.item() for wd in torch.logspace(-6, 5, 45)]
    assert grid.tolist() == expected
    assert grid[0] == pytest.approx(1e6, rel=1e-6) and grid[-1] == pytest.approx(1e-5, rel=1e-6)
    assert np.all(np.diff(grid) < 0)


def test_sklearn_grid_reproduces_a_direct_warm_started_loop(overlapping):
    (x, y), (vx, vy) = overlapping["train"], overlapping["val"]
    Cs = logreg.default_C_grid(12)
    result = logreg.fit_logreg_grid(x, y, vx, vy, Cs, "accuracy", progress=False)

    # the original's stopping rule on today's n-times smaller objective: tol 1e-4 / n
    clf = LogisticRegression(solver="lbfgs", warm_start=True, tol=1e-4 / len(x))
    scores, best_score, best_C = [], 0.0, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for C in Cs:
            clf.set_params(C=C)
            clf.fit(x.astype(np.float64), y)
            score = 100.0 * clf.score(vx.astype(np.float64), vy)
            scores.append(score)
            if score > best_score:
                best_score, best_C = score, C
    assert result.val_scores == pytest.approx(scores, abs=1e-12)
    assert result.best_C == best_C
    np.testing.assert_allclose(result.last_model.coef_, clf.coef_)
    assert result.details["iterations"] > 0


def test_original_stopping_rule_is_scikit_learn_022s_objective_and_tol(data):
    """scikit-learn 0.22's multinomial lbfgs: scipy L-BFGS-B on sum CE + ||W||^2 / (2C) with
    gtol 1e-4 and 100 iterations. L-BFGS-B is invariant to scaling the objective, so today's
    estimator with tol 1e-4 / n follows the same path up to the stopping point."""
    (x, y) = data["train"]
    x = x.astype(np.float64)
    k, d, C = 8, x.shape[1], 0.01  # the 0.22 rule stops after ~90 iterations, today's after ~30
    onehot = np.eye(k)[y]

    def objective_022(theta):
        w = theta.reshape(k, d + 1)
        z = x @ w[:, :d].T + w[:, d]
        loss = -(onehot * log_softmax(z, axis=1)).sum() + 0.5 / C * (w[:, :d] ** 2).sum()
        residual = softmax(z, axis=1) - onehot
        grad = np.concatenate([residual.T @ x + w[:, :d] / C, residual.sum(0)[:, None]], 1)
        return loss, grad.ravel()

    result = minimize(objective_022, np.zeros(k * (d + 1)), jac=True, method="L-BFGS-B",
                      options={"gtol": 1e-4, "maxiter": 100})
    reference = result.x.reshape(k, d + 1)
    model = logreg.fit_logreg(x, y, C, solver="sklearn")
    scale = np.abs(reference[:, :d]).max()
    np.testing.assert_allclose(model.coef_, reference[:, :d], atol=1e-3 * scale)
    loose = logreg.fit_logreg(x, y, C, solver="sklearn", sklearn_stopping="installed")
    # 0.22 also stopped on scipy's default relative reduction (ftol 2.2e-9), which today's
    # estimator fixes at 64 eps, so ours runs at least as long and lands at least as close
    assert model.n_iter >= result.nit > loose.n_iter
    error, loose_error = (np.abs(m.coef_ - reference[:, :d]).max() for m in (model, loose))
    assert loose_error > 3 * error


def test_ties_go_to_the_first_value_in_grid_order():
    assert metrics.first_best([50.0, 70.0, 70.0, 60.0]) == 1
    assert metrics.first_best([float("nan"), 10.0, 10.0]) == 1


def test_torch_fit_matches_tightly_converged_sklearn(overlapping):
    (x, y), (tx, _) = overlapping["train"], overlapping["test"]
    reference = LogisticRegression(C=0.05, tol=1e-10, max_iter=10_000).fit(
        x.astype(np.float64), y
    )
    model = logreg.fit_logreg(x, y, 0.05, solver="torch", strategy="path", tol=1e-6)
    assert model.converged
    scale = np.abs(reference.coef_).max()
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=2e-3 * scale)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, atol=5e-3)
    decisions = model.decision_function(tx)
    reference_decisions = reference.decision_function(tx)
    assert np.abs(decisions - reference_decisions).max() < 1e-2
    assert (decisions.argmax(1) == reference_decisions.argmax(1)).mean() > 0.995


def test_binary_fit_is_the_originals_two_class_softmax(data):
    """The original's multinomial fit of a binary problem, solved here directly with scipy."""
    (x, y) = data["train"]
    x = x[:400].astype(np.float64)
    target = (y[:400] % 2).astype(np.int64)
    C, d = 0.3, x.shape[1]

    def objective(theta):
        w, b = theta[: 2 * d].reshape(2, d), theta[2 * d :]
        z = x @ w.T + b
        log_p = log_softmax(z, axis=1)
        loss = -C * log_p[np.arange(len(target)), target].sum() + 0.5 * (w * w).sum()
        residual = softmax(z, axis=1)
        residual[np.arange(len(target)), target] -= 1
        grad = np.concatenate([(C * residual.T @ x + w).ravel(), C * residual.sum(0)])
        return loss, grad

    solution = minimize(objective, np.zeros(2 * d + 2), jac=True, method="L-BFGS-B",
                        options={"gtol": 1e-10, "maxiter": 10_000}).x
    w2 = solution[: 2 * d].reshape(2, d)
    for solver in ("torch", "sklearn"):
        converged = {"strategy": "path", "tol": 1e-7} if solver == "torch" else {}
        model = logreg.fit_logreg(x, target, C, solver=solver, **converged)
        scale = np.abs(w2).max()
        tolerance = 2e-3 if solver == "torch" else 2e-2  # sklearn keeps its default tol
        np.testing.assert_allclose(model.coef_, w2, atol=tolerance * scale)
        assert np.array_equal(model.classes_, [0, 1])


def test_converged_torch_grid_agrees_with_sklearn_grid_on_this_data(overlapping):
    """Here the original's capped fits pick a C whose fit has converged, so the converged path
    agrees; where they do not (see the README's linear section) only the chain does."""
    (x, y), (vx, vy), (tx, ty) = overlapping["train"], overlapping["val"], overlapping["test"]
    trainval_x, trainval_y = np.concatenate([x, vx]), np.concatenate([y, vy])
    Cs = logreg.default_C_grid()
    grids = {
        solver: logreg.fit_logreg_grid(x, y, vx, vy, Cs, "mean_per_class_accuracy",
                                       solver=solver, progress=False,
                                       **({"strategy": "path"} if solver == "torch" else {}))
        for solver in ("sklearn", "torch")
    }
    sk_grid, t_grid = grids["sklearn"], grids["torch"]
    assert t_grid.details["strategy"] == "path"
    assert t_grid.unconverged_fits == 0
    # the same or an adjacent C, or one that sklearn's own curve rates as good as its best
    sk_scores = sk_grid.val_scores
    assert abs(sk_grid.best_index - t_grid.best_index) <= 1 or (
        sk_scores[t_grid.best_index] == sk_scores[sk_grid.best_index]
    )
    # at one C both solvers give the same test score (400 test samples: 0.3 points < 2 samples)
    tests = {}
    for solver, grid in grids.items():
        start = grid.last_model if solver == "sklearn" else None  # torch re-walks its path
        final = logreg.fit_logreg(trainval_x, trainval_y, sk_grid.best_C, solver=solver,
                                  warm_start_from=start,
                                  **({"strategy": "path"} if solver == "torch" else {}))
        tests[solver] = metrics.score("mean_per_class_accuracy", ty, final.decision_function(tx))
    assert abs(tests["sklearn"] - tests["torch"]) <= 0.3


def test_batched_grid_equals_sequential_path(overlapping):
    (x, y), (vx, vy) = overlapping["train"], overlapping["val"]
    Cs = logreg.default_C_grid(45)[20:36:2]  # C from ~3 to ~6e-4: tight convergence is quick
    runs = {
        strategy: logreg.fit_logreg_grid(x, y, vx, vy, Cs, "accuracy", solver="torch",
                                         strategy=strategy, tol=1e-6, progress=False)
        for strategy in ("path", "batched")
    }
    path, batched = runs["path"], runs["batched"]
    assert path.details["strategy"] == "path" and batched.details["strategy"] == "batched"
    assert path.val_scores == batched.val_scores
    assert path.best_C == batched.best_C
    for a, b in ((path.best_model, batched.best_model), (path.last_model, batched.last_model)):
        np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-3 * np.abs(a.coef_).max())


@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel"])
def test_torch_chain_repeats_the_sklearn_grid(overlapping, kind):
    """The chain makes the original's capped, warm-started fits in torch: the same val curve,
    C, models and refit as scikit-learn."""
    source = voc_like(overlapping) if kind == "multilabel" else overlapping
    (x, y), (vx, vy), (tx, ty) = source["train"], source["val"], source["test"]
    metric = "voc11_map" if kind == "multilabel" else "accuracy"
    if kind == "binary":
        y, vy, ty = y % 2, vy % 2, ty % 2
    Cs = logreg.default_C_grid(15)  # the paper's range, a third of its values
    grids = {
        solver: logreg.fit_logreg_grid(x, y, vx, vy, Cs, metric, solver=solver, progress=False)
        for solver in ("sklearn", "torch")
    }
    sk, chain = grids["sklearn"], grids["torch"]
    assert chain.details["strategy"] == "chain"
    assert chain.val_scores == sk.val_scores
    assert chain.best_index == sk.best_index
    for a, b in ((chain.best_model, sk.best_model), (chain.last_model, sk.last_model)):
        np.testing.assert_allclose(a.coef_, b.coef_, rtol=0, atol=1e-7 * np.abs(b.coef_).max())
    trainval_x, trainval_y = np.concatenate([x, vx]), np.concatenate([y, vy])
    finals = {
        solver: logreg.fit_logreg(trainval_x, trainval_y, sk.best_C, solver=solver,
                                  warm_start_from=grid.last_model)
        for solver, grid in grids.items()
    }
    decisions = {solver: model.decision_function(tx) for solver, model in finals.items()}
    np.testing.assert_allclose(decisions["torch"], decisions["sklearn"], rtol=0,
                               atol=1e-6 * np.abs(decisions["sklearn"]).max())
    assert finals["torch"].n_iter == finals["sklearn"].n_iter


def test_torch_chain_picks_sklearns_C_where_early_fits_are_ill_conditioned(separable):
    """At C = 1e6 these classes are separable: 100 iterations leave weights in the hundreds and
    rounding differences grow to percents within a few fits (scikit-learn's own curve moves with
    its BLAS thread count), so early val scores differ by a few samples; the fits converge
    further along the grid, and there the two solvers agree again, on the same C (a 15-value
    grid over the paper's range: 9 capped fits, then converged ones)."""
    (x, y), (vx, vy) = separable["train"], separable["val"]
    Cs = logreg.default_C_grid(15)
    sk, chain = (
        logreg.fit_logreg_grid(x, y, vx, vy, Cs, "accuracy", solver=solver, progress=False)
        for solver in ("sklearn", "torch")
    )
    assert 0 < sk.unconverged_fits <= sk.best_index  # capped early fits, a converged best
    assert chain.best_index == sk.best_index
    assert chain.val_scores[sk.best_index:] == sk.val_scores[sk.best_index:]
    np.testing.assert_allclose(chain.last_model.coef_, sk.last_model.coef_, rtol=0,
                               atol=1e-7 * np.abs(sk.last_model.coef_).max())


def test_voc_multilabel_grid_with_both_solvers(multilabel):
    (x, y), (vx, vy), (tx, ty) = multilabel["train"], multilabel["val"], multilabel["test"]
    Cs = logreg.default_C_grid(45)[18:40:3]
    tests = {}
    for solver in ("sklearn", "torch"):
        grid = logreg.fit_logreg_grid(x, y, vx, vy, Cs, "voc11_map", solver=solver,
                                      progress=False)
        assert len(grid.val_scores) == len(Cs)
        model = logreg.fit_logreg(x, y, grid.best_C, solver=solver)
        assert model.multilabel and model.coef_.shape == (5, x.shape[1])
        tests[solver] = metrics.score("voc11_map", ty, model.decision_function(tx))
    assert 50 < tests["sklearn"] <= 100
    assert abs(tests["sklearn"] - tests["torch"]) < 0.5


def test_torch_refit_walks_the_grid_path(overlapping):
    """Without a warm start, the torch fit at C is the grid path's model at C."""
    (x, y), (vx, vy) = overlapping["train"], overlapping["val"]
    Cs = logreg.default_C_grid()
    grid = logreg.fit_logreg_grid(x, y, vx, vy, Cs, "accuracy", solver="torch", strategy="path",
                                  progress=False)
    for index in (5, grid.best_index):
        model = logreg.fit_logreg(x, y, Cs[index], solver="torch", strategy="path")
        np.testing.assert_array_equal(
            model.coef_, logreg.fit_logreg(x, y, Cs[index], solver="torch", strategy="path").coef_
        )
        accuracy = metrics.score("accuracy", vy, model.decision_function(vx))
        assert accuracy == pytest.approx(grid.val_scores[index])


def test_multilabel_batched_grid_equals_path(multilabel):
    (x, y), (vx, vy) = multilabel["train"], multilabel["val"]
    Cs = logreg.default_C_grid(45)[22:34:2]
    runs = [
        logreg.fit_logreg_grid(x, y, vx, vy, Cs, "voc11_map", solver="torch", strategy=strategy,
                               tol=1e-6, progress=False)
        for strategy in ("path", "batched")
    ]
    np.testing.assert_allclose(runs[0].val_scores, runs[1].val_scores, atol=0.01)  # mAP points
    np.testing.assert_allclose(runs[0].best_model.coef_, runs[1].best_model.coef_,
                               atol=1e-3 * np.abs(runs[0].best_model.coef_).max())


def test_multilabel_fit_is_one_binary_classifier_per_class(multilabel):
    (x, y) = multilabel["train"]
    model = logreg.fit_logreg(x, y, 0.1, solver="torch", strategy="path", tol=1e-7)
    for column in (0, 3):
        reference = LogisticRegression(C=2 * 0.1, tol=1e-10, max_iter=10_000).fit(
            x.astype(np.float64), y[:, column]
        )
        np.testing.assert_allclose(2 * model.coef_[column], reference.coef_[0],
                                   atol=2e-3 * np.abs(reference.coef_).max())


def test_sklearn_convergence_warnings_are_counted_not_shown(data):
    (x, y), (vx, vy) = data["train"], data["val"]
    x = x * 50.0  # badly scaled features: lbfgs hits max_iter=100
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = logreg.fit_logreg_grid(x, y, vx * 50.0, vy, [1e-2], "accuracy", progress=False)
    assert result.unconverged_fits == 1


def test_bad_inputs_raise_clear_errors(data):
    (x, y), (vx, vy) = data["train"], data["val"]
    with pytest.raises(logreg.LogregError, match="unknown solver 'liblinear'"):
        logreg.fit_logreg(x, y, 1.0, solver="liblinear")
    with pytest.raises(logreg.LogregError, match="needs \\(n, C\\) 0/1 labels"):
        logreg.fit_logreg_grid(x, y, vx, vy, [1.0], "voc11_map", progress=False)
    with pytest.raises(logreg.LogregError, match=r"class column\(s\) \[1\]"):
        logreg.fit_logreg(x[:4], np.array([[1, 0], [0, 0], [1, 0], [0, 0]]), 1.0)
    with pytest.raises(logreg.LogregError, match="labels must be"):
        logreg.fit_logreg(x, y[:-1], 1.0)
    with pytest.raises(logreg.LogregError, match="C must be > 0"):
        logreg.fit_logreg(x, y, 0.0)
    with pytest.raises(logreg.LogregError, match="unknown strategy 'newton'; expected one"):
        logreg.fit_logreg_grid(x, y, vx, vy, [1.0], "accuracy", solver="torch", strategy="newton")
    with pytest.raises(logreg.LogregError, match="unknown precision 'fp16'"):
        logreg.fit_logreg(x, y, 1.0, solver="torch", precision="fp16")
    with pytest.raises(logreg.LogregError, match="unknown sklearn_stopping 'strict'"):
        logreg.fit_logreg(x, y, 1.0, solver="torch", sklearn_stopping="strict")
    if not torch.cuda.is_available():
        with pytest.raises(logreg.LogregError, match="CUDA is not available"):
            logreg.fit_logreg(x, y, 1.0, solver="torch", device="cuda")


def _threads_during_a_fit(x, y):
    """{library path: threads} of every BLAS / OpenMP pool while the sklearn chain fits, and
    before and after it (under a limit of 2)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from transfer.classifiers.logreg.sklearn_chain import SklearnChain

    def pools():
        return {info["filepath"]: info["num_threads"] for info in threadpool_info()
                if info["user_api"] in ("blas", "openmp")}

    chain = SklearnChain()
    seen = {}
    fit = chain.estimator.fit

    def spying_fit(*args):
        seen.update(pools())
        return fit(*args)

    chain.estimator.fit = spying_fit
    with threadpool_limits(limits=2):
        before = pools()
        chain.fit(x.astype(np.float64), y, 1.0)
        after = pools()
    return before, seen, after


def test_sklearn_fits_give_one_thread_to_scipys_own_blas_only(data, monkeypatch):
    """A large fit: the BLAS shipped in scipy's wheel runs one thread (L-BFGS-B's vector
    operations) while numpy's keeps its threads for the GEMMs; both are restored after."""
    import os

    import scipy

    from transfer.classifiers.logreg import sklearn_chain

    monkeypatch.setattr(sklearn_chain, "THREADED_WORK", 0)  # every fit counts as large
    (x, y) = (part[:300] for part in data["train"])
    wheel_libs = os.path.dirname(scipy.__file__) + ".libs"
    before, seen, after = _threads_during_a_fit(x, y)
    assert seen and after == before
    for path, threads in seen.items():
        expected = 1 if os.path.dirname(path) == wheel_libs else before[path]
        assert threads == expected, path


def test_small_sklearn_fits_run_every_thread_pool_on_one_thread(data):
    """A fit below THREADED_WORK (this one: n x d x classes ~ 1e5) runs all BLAS and OpenMP on
    one thread: a thread team stalls for a time slice whenever another process holds a core
    (issue 16: the digits grid 21 s alone, 349 s beside one other job)."""
    from transfer.classifiers.logreg import sklearn_chain

    (x, y) = data["train"]
    assert x.shape[0] * x.shape[1] * np.unique(y).size < sklearn_chain.THREADED_WORK
    before, seen, after = _threads_during_a_fit(x, y)
    assert seen and after == before and set(before.values()) == {2}
    assert set(seen.values()) == {1}


def test_the_sklearn_solver_rejects_torch_only_options(data):
    (x, y), (vx, vy) = data["train"], data["val"]
    for option in ({"strategy": "path"}, {"precision": "float32"}, {"tol": 1e-6},
                   {"max_iter": 50}, {"history": 5}):
        name = next(iter(option))
        with pytest.raises(logreg.LogregError, match=rf"{name}=.*option\(s\) of the torch solver"):
            logreg.fit_logreg(x, y, 1.0, solver="sklearn", **option)
        with pytest.raises(logreg.LogregError, match=rf"{name}=.*solver='torch'"):
            logreg.fit_logreg_grid(x, y, vx, vy, [1.0], "accuracy", progress=False, **option)


def test_torch_grid_scores_val_on_its_device_not_through_the_cpu_model(overlapping, monkeypatch):
    """The val decision values of the grid's fits come from the solver's device tensors; the val
    curve equals scikit-learn's (as in test_torch_chain_repeats_the_sklearn_grid)."""
    (x, y), (vx, vy) = overlapping["train"], overlapping["val"]
    Cs = logreg.default_C_grid(15)
    expected = logreg.fit_logreg_grid(x, y, vx, vy, Cs, "accuracy", solver="sklearn",
                                      progress=False)

    def no_cpu_scoring(self, features):
        raise AssertionError("scored through LinearModel.decision_function on the CPU")

    monkeypatch.setattr(logreg.LinearModel, "decision_function", no_cpu_scoring)
    grid = logreg.fit_logreg_grid(x, y, vx, vy, Cs, "accuracy", solver="torch", progress=False)
    assert grid.val_scores == expected.val_scores


@pytest.mark.parametrize(
    ("capability", "name", "warns"),
    [((8, 6), "NVIDIA GeForce RTX 3090", True), ((8, 9), "NVIDIA L4", True),
     ((7, 5), "Tesla T4", True), ((10, 3), "NVIDIA B300", True),
     ((8, 0), "NVIDIA A100-SXM4-80GB", False), ((9, 0), "NVIDIA H200", False),
     ((7, 0), "Tesla V100-SXM2-16GB", False)],
)
def test_a_warning_once_on_gpus_whose_float64_is_slow(monkeypatch, caplog, capability, name,
                                                      warns):
    from transfer.classifiers.logreg import torch_solver

    monkeypatch.setattr(torch_solver, "_warned_devices", set())
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    cuda = torch.device("cuda")
    assert torch_solver.warn_if_float64_is_slow(cuda, torch.float64) is warns
    assert torch_solver.warn_if_float64_is_slow(cuda, torch.float64) is False  # once
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    if warns:
        assert len(said) == 1 and said[0].startswith("--solver torch runs ")
        assert name in said[0] and "float64" in said[0]
        assert "--solver sklearn (CPU) may be faster" in said[0]
    else:
        assert said == []
    # float32 strategies and the CPU never warn
    assert not torch_solver.warn_if_float64_is_slow(cuda, torch.float32)
    assert not torch_solver.warn_if_float64_is_slow(torch.device("cpu"), torch.float64)
