"""benchmarks/knn_bench.py on a tiny problem: every figure is there and the runs agree."""

from benchmarks.knn_bench import benchmark_knn, main


def test_report_times_all_three_runs_and_checks_agreement():
    report = benchmark_knn(
        n_train=600, n_test=150, dim=32, num_classes=5, ks=(1, 5, 20), separation=0.3,
        query_chunk=64, train_chunk=250,
    )  # fmt: skip
    assert report["shape"] == {"train": [600, 32], "test": [150, 32]}
    for key in ("matmul_s", "ours_s", "sklearn_s", "sklearn_search_s"):
        assert report[key] > 0
    assert report["ours_over_matmul"] == report["ours_s"] / report["matmul_s"]
    assert report["sklearn_over_ours"] == report["sklearn_s"] / report["ours_s"]
    assert set(report["agreement"]) == {1, 5, 20}
    assert min(report["agreement"].values()) >= 0.99
    for k in (1, 5, 20):  # overlapping classes: neither trivial nor chance
        assert 25 < report["ours_accuracy"][k] < 99
        assert abs(report["ours_accuracy"][k] - report["sklearn_accuracy"][k]) <= 1.0


def test_command_line_prints_the_ratios(capsys, tmp_path):
    main(["--n-train", "300", "--n-test", "50", "--dim", "16", "--classes", "3",
          "--k", "3", "10", "--json", str(tmp_path / "r.json")])  # fmt: skip
    out = capsys.readouterr().out
    assert "float32 matmul of the similarities (the limit)" in out
    assert "the matmul)" in out and "ours is x" in out
    assert "k=10" in out and (tmp_path / "r.json").is_file()
