"""benchmarks/bootstrap_bench.py on a small problem: both ways score the same resamples."""

import pytest

from benchmarks.bootstrap_bench import benchmark_bootstrap


@pytest.mark.parametrize("metric", ["accuracy", "mean_per_class_accuracy", "voc11_map"])
def test_vectorised_and_plain_loop_agree(metric):
    run = benchmark_bootstrap(metric, n=300, classes=6, resamples=40, loop_resamples=10)
    assert run["metric"] == metric and run["shape"] == [300, 6] and run["loop_timed_on"] == 10
    assert run["max_difference"] < 1e-9
    assert run["ratio"] == pytest.approx(run["loop_s"] / run["vectorised_s"])
