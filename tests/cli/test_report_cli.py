"""report.py: tables, the paper comparison and plots from result files, and its errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import report as report_script
from tests.fixtures import sweep_grid
from transfer.report import PAPER_DIR
from transfer.stats import bootstrap, comparisons

swept = sweep_grid.swept  # the shared real sweep (a session fixture)

MODELS = ["moco-v1", "simclr-v2", "deepcluster-v2"]


def test_report_writes_tables_plots_and_the_paper_beside_ours(tmp_path, capsys):
    results = tmp_path / "results"
    (results / "linear").mkdir(parents=True)
    for i, model in enumerate(MODELS):
        for dataset in ("cifar10", "pets"):
            score = 80.0 + 3 * i + (dataset == "pets")
            record = {"protocol": "linear", "model": model, "dataset": dataset,
                      "metric": "accuracy", "score": score, "ci": [score - 1.0, score + 0.5]}
            (results / "linear" / f"{model}__{dataset}.json").write_text(json.dumps(record))
    out = tmp_path / "report"
    assert report_script.main(["--results-dir", str(results), "--out", str(out), "--paper",
                               "--bootstrap", "200"]) == 0
    printed = capsys.readouterr().out
    assert "tables: linear, linear_vs_paper, correlation" in printed
    assert f"open {out / 'index.html'} (or {out / 'report.md'})" in printed
    assert (out / "index.html").is_file()
    with open(PAPER_DIR / "linear.csv") as handle:
        paper = {row["model"]: float(row["pets"]) for row in csv.DictReader(handle)}
    with open(out / "tables" / "linear_vs_paper.csv") as handle:
        rows = {row["model / column"]: row for row in csv.DictReader(handle)}
    row = rows["simclr-v2 / pets"]
    assert float(row["ours"]) == 84.0 and float(row["paper"]) == paper["simclr-v2"]
    assert float(row["difference"]) == 84.0 - paper["simclr-v2"]
    assert (float(row["ours_low"]), float(row["ours_high"])) == (83.0, 84.5)
    assert paper["simclr-v2"] == 84.72 and row["paper_in_our_interval"] == "no"  # > 84.5
    markdown = (out / "tables" / "linear_vs_paper.md").read_text()
    assert "| simclr-v2 / pets | 84.00 ± 0.75 |" in markdown
    assert (out / "plots" / "linear_vs_imagenet.png").is_file()
    assert (out / "plots" / "linear_heatmap.png").is_file()
    assert "![linear heatmap](plots/linear_heatmap.png)" in (out / "report.md").read_text()


def test_report_errors_name_the_folder(tmp_path, capsys):
    missing = tmp_path / "nothing-here"
    assert report_script.main(["--results", str(missing), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"report.py: error: {missing}: no such results folder" in err
    assert not Path(tmp_path / "r").exists()


def _linear_record(results: Path, model: str, score: float, given: str | None = None) -> None:
    record = {"protocol": "linear", "model": model, "dataset": "dtd", "score": score}
    if given:
        record["arguments"] = {"model": given}
    (results / "linear").mkdir(parents=True, exist_ok=True)
    (results / "linear" / f"{model}__dtd.json").write_text(json.dumps(record))


def test_results_dir_from_the_environment_and_the_old_flag(tmp_path, capsys, monkeypatch):
    """--results-dir as in every script; $SSL_TRANSFER_RESULTS without it; --results stays."""
    for name in ("env", "old"):
        _linear_record(tmp_path / name, f"model-{name}", 50.0)
    monkeypatch.setenv("SSL_TRANSFER_RESULTS", str(tmp_path / "env"))
    assert report_script.main(["--out", str(tmp_path / "a"), "--bootstrap", "0"]) == 0
    assert "model-env" in (tmp_path / "a" / "tables" / "linear.md").read_text()
    assert report_script.main(["--results", str(tmp_path / "old"), "--out", str(tmp_path / "b"),
                               "--bootstrap", "0"]) == 0
    assert "model-old" in (tmp_path / "b" / "tables" / "linear.md").read_text()
    capsys.readouterr()


def test_labels_name_models_and_bad_ones_are_one_line_errors(tmp_path, capsys):
    results = tmp_path / "results"
    _linear_record(results, "timm-test_vit+random-init", 60.0, given="timm:test_vit")
    _linear_record(results, "byol", 70.0)
    out = tmp_path / "r"
    assert report_script.main(["--results-dir", str(results), "--out", str(out), "--bootstrap",
                               "0", "--label", "byol=BYOL (ours)"]) == 0
    table = (out / "tables" / "linear.md").read_text()
    assert "| BYOL (ours) | 70.00 |" in table and "| timm:test_vit | 60.00 |" in table
    assert "timm-test_vit+random-init" in (out / "tables" / "linear.csv").read_text()
    capsys.readouterr()
    for label, message in (("nope=X", "--label nope=X: no model 'nope' in the results"),
                           ("byol", "--label 'byol': expected NAME=TEXT"),
                           ("byol=timm:test_vit", "would both be shown as 'timm:test_vit'")):
        fresh = tmp_path / f"fresh-{len(message)}"
        assert report_script.main(["--results-dir", str(results), "--out", str(fresh),
                                   "--label", label]) == 2
        err = capsys.readouterr().err
        assert err.startswith("report.py: error: ") and message in err
        assert len(err.strip().splitlines()) == 1 and not fresh.exists()


def test_report_prints_a_warning_for_mixed_code_versions(tmp_path, capsys):
    results = tmp_path / "results"
    (results / "linear").mkdir(parents=True)
    for model, commit in (("byol", "1" * 40), ("pirl", "2" * 40)):
        record = {"protocol": "linear", "model": model, "dataset": "dtd", "score": 60.0,
                  "provenance": {"splits": {"test": "same"},
                                 "code": {"version": "0.1.0", "commit": commit, "dirty": False}}}
        (results / "linear" / f"{model}__dtd.json").write_text(json.dumps(record))
    assert report_script.main(["--results", str(results), "--out", str(tmp_path / "r"),
                               "--bootstrap", "0"]) == 0
    warning = (f"warning: linear mixes records of 2 code versions: {'1' * 40} (1: byol/dtd); "
               f"{'2' * 40} (1: pirl/dtd)")
    assert warning in capsys.readouterr().out.splitlines()
    assert warning.removeprefix("warning: ") in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.slow
def test_a_sweep_of_two_models_reports_intervals_and_significance_marks(swept, tmp_path, capsys):
    """The acceptance run: sweep.py on the Aircraft fixture for two models (the shared real sweep of
    tests/fixtures/sweep_grid.py, whose second run skipped every cell), then report.py shows
    intervals (±), significance marks (bold) and rank intervals; the pairs table's p-values
    follow from the records' per-image outputs."""
    assert "4 cells: 4 to run, 0 with results" in swept.first
    assert "4 cells: 0 to run, 4 with results" in swept.again
    results, dataset, models = swept.results, sweep_grid.DATASET, sweep_grid.MODELS

    out = tmp_path / "report"
    assert report_script.main(["--results", str(results), "--out", str(out),
                               "--bootstrap", "300"]) == 0
    printed = capsys.readouterr().out
    assert "warning" not in printed  # one code version, one identity per split
    table = (out / "tables" / "linear.md").read_text()
    assert f"| model | {dataset} | rank [95%] |" in table
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()
            if line.startswith(tuple(f"| {m} " for m in models))}
    assert set(rows) == set(models)  # shown by their --model names
    for line in rows.values():
        assert line.count(" ± ") == 1
        assert line.split(" | ")[2].split("–")[0].split()[0].isdigit()  # rank [low–high]
    assert table.count("**") >= 2  # at least the best of the dataset, in bold
    assert "bold: the best of the models compared on the dataset" in table
    page = (out / "report.md").read_text()
    assert table.split("\n", 2)[2].split("\n- ")[0] in page

    a, b = (sweep_grid.LABELS[m] for m in models)  # pairs are named by the result labels
    with open(out / "tables" / "linear_pairs.csv") as handle:
        pairs = {row["pair"]: row for row in csv.DictReader(handle)}
    assert set(pairs) == {f"{dataset}: {a} vs {b}"}
    metric = "mean_per_class_accuracy"  # Aircraft's
    # the sweep's -i 16 -w 3 are named in the file names (transfer/records/results.py)
    stored = {m: np.load(next((results / "linear").glob(f"{m}__{dataset}*.npz")))
              for m in (a, b)}
    targets = stored[a]["targets"]
    assert np.array_equal(targets, stored[b]["targets"])
    indices = bootstrap.resample_indices(targets, metric, 300, seed=0)
    resampled = [bootstrap.metric_over_resamples(metric, targets,
                                                 stored[m]["scores"].astype(np.float32),
                                                 indices) for m in (a, b)]
    p = comparisons.paired_p_value(*resampled)
    assert float(pairs[f"{dataset}: {a} vs {b}"]["p"]) == pytest.approx(p)
    scores = {m: json.loads(next((results / "linear").glob(f"{m}__{dataset}*.json"))
                            .read_text())["score"] for m in (a, b)}
    best = max((a, b), key=scores.get)
    for model, label in zip(models, (a, b), strict=True):
        tied = "**" in rows[model].split(" | ")[1]
        assert tied == (label == best or p >= 0.05)
