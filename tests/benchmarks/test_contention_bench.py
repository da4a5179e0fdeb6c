"""benchmarks/contention_bench.py on a tiny problem: both policies timed alone and beside the
controlled load, and the solver's own threshold left as it was."""

from benchmarks.contention_bench import POLICIES, benchmark
from benchmarks.logreg_bench import make_realistic_features
from transfer.classifiers import logreg
from transfer.classifiers.logreg import sklearn_chain


def test_both_policies_are_timed_alone_and_busy_and_the_threshold_is_restored():
    threshold = sklearn_chain.THREADED_WORK
    data = make_realistic_features(n_train=60, n_val=30, n_test=10, dim=8, num_classes=3,
                                   separation=0.3)
    report = benchmark(data, logreg.default_C_grid(45)[::22], busy=1)
    assert list(report) == list(POLICIES)
    for row in report.values():
        assert row["alone_s"] > 0 and row["busy_s"] > 0
        assert row["ratio"] == row["busy_s"] / row["alone_s"]
        assert row["best_index"] == row["best_index_busy"]  # the same fits, only slower or not
    assert sklearn_chain.THREADED_WORK == threshold
