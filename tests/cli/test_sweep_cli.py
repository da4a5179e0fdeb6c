"""sweep.py end to end: a 2 models x 1 dataset x 2 protocols grid (the shared real sweep of
tests/fixtures/sweep_grid.py), the rerun that skips every cell, then report.py on what it wrote;
its dry run and its option errors."""

from __future__ import annotations

import json
import shutil

import pytest

import report as report_script
import sweep as sweep_script
from tests.fixtures import sweep_grid

swept = sweep_grid.swept  # the shared real sweep (a session fixture)
DATASET, LABELS, MODELS = sweep_grid.DATASET, sweep_grid.LABELS, sweep_grid.MODELS

# the dry run's grid: a checkpoint file in --models-dir and the demo set
DRY_MODELS = ("random", "tiny")
DRY_DATASETS = ("dtd", "aircraft")


def _argv(tmp_path, *more: str) -> list[str]:
    return ["--models", *DRY_MODELS, "--datasets", *DRY_DATASETS, "--protocols", "linear",
            "few_shot", "--n-support", "1", "2", "--results-dir", str(tmp_path / "results"),
            "--models-dir", str(tmp_path / "models"), "--data-root", str(tmp_path / "data"),
            "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--image-size", "32",
            "--workers", "0", "--no-progress", "--extra", "linear=--wd-values 3 --C 0.5",
            "--extra", "few_shot=--n-way 2 --n-query 2 --iter-num 10", *more]


def _summary_row(out: str, protocol: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.split()[:1] == [protocol])


@pytest.mark.slow
def test_sweep_runs_the_grid_then_skips_it_and_report_reads_it(swept, tmp_path, capsys):
    assert swept.codes[0] == 0
    out = swept.first
    assert "4 cells: 4 to run, 0 with results" in out
    assert _summary_row(out, "linear") == ["linear", "2", "0", "0"]
    assert _summary_row(out, "few_shot") == ["few_shot", "2", "0", "0"]
    results = swept.results
    for model in MODELS:
        label = LABELS[model]
        # settings other than the paper's are named in the file names
        paths = [results / "linear" / f"{label}__{DATASET}__w3__i16.json"] + [
            results / "few_shot" / f"{label}__{DATASET}__2way{k}shot__q2__episodes10__i16.json"
            for k in (1, 2)]
        for path in paths:
            record = json.loads(path.read_text())
            assert (record["model"], record["dataset"]) == (label, DATASET)
            assert path in swept.mtimes
        assert json.loads(paths[2].read_text())["n_support"] == 2
        for protocol in ("linear", "few_shot"):
            log = results / "sweep_logs" / protocol / f"{label.split('+')[0]}__{DATASET}.log"
            assert log.read_text().startswith("$ ")

    assert swept.codes[1] == 0
    out = swept.again
    assert "4 cells: 0 to run, 4 with results" in out
    assert _summary_row(out, "total") == ["total", "0", "0", "4"]
    assert {path: path.stat().st_mtime_ns for path in swept.mtimes} == swept.mtimes

    report = tmp_path / "report"
    assert report_script.main(["--results", str(results), "--out", str(report),
                               "--bootstrap", "200"]) == 0
    out = capsys.readouterr().out
    assert "tables: linear, few_shot_2way1shot, few_shot_2way2shot, calibration, correlation" in out
    table = (report / "tables" / "linear.md").read_text()
    assert f"| model | {DATASET} | rank [95%] |" in table
    assert all(f"| {model} |" in table for model in MODELS)  # shown by their --model names


def test_dry_run_lists_commands_and_runs_nothing(tmp_path, capsys):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.pth").write_bytes(b"")
    argv = _argv(tmp_path, "--dry-run")
    argv[argv.index("aircraft")] = "eurosat"  # cross-domain: few-shot only
    assert sweep_script.main(argv) == 0
    out = capsys.readouterr().out
    assert "left out linear x eurosat: a cross-domain set is few-shot only" in out
    assert "6 cells: 6 to run, 0 with results" in out
    assert "run   few_shot/tiny__eurosat: " in out
    assert "--n-support 1 2 --n-way 2 --n-query 2 --iter-num 10" in out
    assert not (tmp_path / "results").exists()


def test_bad_options_exit_2_with_the_reason(tmp_path, capsys, monkeypatch):
    assert sweep_script.main(["--models", "random", "--datasets", "imagenet", "--protocols",
                              "linear", "--results-dir", str(tmp_path)]) == 2
    assert "sweep.py: error: unknown dataset 'imagenet'" in capsys.readouterr().err
    assert sweep_script.main(["--models", "random", "--datasets", "dtd", "--protocols",
                              "linear", "--results-dir", str(tmp_path), "--executor", "slurm",
                              "--slurm-time", "0"]) == 2
    assert "sweep.py: error: --slurm-time 0: expected at least 1 (minutes)" in (
        capsys.readouterr().err)
    if shutil.which("srun") is not None:  # a Slurm client, but SLURM_CONF names no file
        monkeypatch.setenv("SLURM_CONF", str(tmp_path / "nowhere" / "slurm.conf"))
        assert sweep_script.main(["--models", "random", "--datasets", "digits", "--protocols",
                                  "linear", "--results-dir", str(tmp_path),
                                  "--executor", "slurm"]) == 2
        assert f"SLURM_CONF={tmp_path / 'nowhere' / 'slurm.conf'} is not a file" in (
            capsys.readouterr().err)
    else:
        assert sweep_script.main(["--models", "random", "--datasets", "dtd", "--protocols",
                                  "linear", "--results-dir", str(tmp_path),
                                  "--executor", "slurm"]) == 2
        assert "on a Slurm login node" in capsys.readouterr().err
