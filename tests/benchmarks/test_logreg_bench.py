"""benchmarks/logreg_bench.py on a small problem: every run is reported and compared."""

import numpy as np

from benchmarks.logreg_bench import benchmark_solvers
from transfer.classifiers import logreg


def test_report_compares_each_torch_strategy_and_the_permuted_rerun_with_sklearn():
    report = benchmark_solvers(
        Cs=logreg.default_C_grid(45)[::4],
        strategies=("chain", "path"),
        sensitivity=True,
        n_train=300, n_val=100, n_test=100, dim=16, num_classes=3, separation=0.3,
    )  # fmt: skip
    assert report["shape"]["train"] == [300, 16] and report["grid_size"] == 12
    for name in ("sklearn_permuted", "torch_chain", "torch_path"):
        run = report[name]
        assert len(run["val_scores"]) == 12
        assert run["grid_steps_from_sklearn_C"] == abs(
            run["best_index"] - report["sklearn"]["best_index"]
        )
        diff = np.abs(np.subtract(run["val_scores"], report["sklearn"]["val_scores"])).max()
        assert run["max_val_diff_vs_sklearn"] == diff
    # on a well-conditioned problem the chain repeats scikit-learn's fits
    assert report["torch_chain"]["val_scores"] == report["sklearn"]["val_scores"]
    assert report["torch_chain"]["test_score"] == report["sklearn"]["test_score"]
