"""report.py: tables, the paper comparison and plots from result files, and its errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import report as report_script
from transfer.report import PAPER_DIR

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
    assert report_script.main(["--results", str(results), "--out", str(out), "--paper"]) == 0
    printed = capsys.readouterr().out
    assert "tables: linear, linear_vs_paper, correlation" in printed
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


def test_report_prints_a_warning_for_mixed_code_versions(tmp_path, capsys):
    results = tmp_path / "results"
    (results / "linear").mkdir(parents=True)
    for model, commit in (("byol", "1" * 40), ("pirl", "2" * 40)):
        record = {"protocol": "linear", "model": model, "dataset": "dtd", "score": 60.0,
                  "provenance": {"splits": {"test": "same"},
                                 "code": {"version": "0.1.0", "commit": commit, "dirty": False}}}
        (results / "linear" / f"{model}__dtd.json").write_text(json.dumps(record))
    assert report_script.main(["--results", str(results), "--out", str(tmp_path / "r")]) == 0
    warning = (f"warning: linear mixes records of 2 code versions: {'1' * 40} (1: byol/dtd); "
               f"{'2' * 40} (1: pirl/dtd)")
    assert warning in capsys.readouterr().out.splitlines()
    assert warning.removeprefix("warning: ") in (tmp_path / "r" / "report.md").read_text()
