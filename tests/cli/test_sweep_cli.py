"""sweep.py end to end: a 2 models x 2 datasets x 2 protocols grid on fixture data, then a rerun
that skips every cell, then report.py on what it wrote."""

from __future__ import annotations

import json
import shutil

import pytest

import report as report_script
import sweep as sweep_script
from tests.fixtures.checkpoints import write_common_checkpoint
from tests.fixtures.dataset_layouts import write_layout

MODELS = ("random", "tiny")
DATASETS = ("dtd", "aircraft")


def _argv(tmp_path, *more: str) -> list[str]:
    return ["--models", *MODELS, "--datasets", *DATASETS, "--protocols", "linear", "few_shot",
            "--n-support", "1", "2", "--results-dir", str(tmp_path / "results"),
            "--models-dir", str(tmp_path / "models"), "--data-root", str(tmp_path / "data"),
            "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--image-size", "32",
            "--workers", "0", "--no-progress", "--extra", "linear=--wd-values 3",
            "--extra", "few_shot=--n-way 2 --n-query 2 --iter-num 10", *more]


def _summary_row(out: str, protocol: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.split()[:1] == [protocol])


@pytest.mark.slow
def test_sweep_runs_the_grid_then_skips_it_and_report_reads_it(tmp_path, capsys):
    for dataset in DATASETS:
        write_layout(dataset, tmp_path / "data", per_class=3)
    write_common_checkpoint(tmp_path / "models" / "tiny.pth", seed=0)

    assert sweep_script.main(_argv(tmp_path, "--jobs", "2")) == 0
    out = capsys.readouterr().out
    assert "8 cells: 8 to run, 0 with results" in out
    assert _summary_row(out, "linear") == ["linear", "4", "0", "0"]
    assert _summary_row(out, "few_shot") == ["few_shot", "4", "0", "0"]
    results = tmp_path / "results"
    written = {}
    for model in MODELS:
        for dataset in DATASETS:
            # settings other than the paper's are named in the file names
            paths = [results / "linear" / f"{model}__{dataset}__w3__i32.json"] + [
                results / "few_shot" / f"{model}__{dataset}__2way{k}shot__q2__episodes10__i32.json"
                for k in (1, 2)]
            for path in paths:
                record = json.loads(path.read_text())
                assert (record["model"], record["dataset"]) == (model, dataset)
                written[path] = path.stat().st_mtime_ns
            assert json.loads(paths[2].read_text())["n_support"] == 2
            assert (results / "sweep_logs" / "linear" / f"{model}__{dataset}.log").is_file()

    assert sweep_script.main(_argv(tmp_path, "--jobs", "2")) == 0
    out = capsys.readouterr().out
    assert "8 cells: 0 to run, 8 with results" in out
    assert _summary_row(out, "total") == ["total", "0", "0", "8"]
    assert {path: path.stat().st_mtime_ns for path in written} == written

    shutil.rmtree(tmp_path / "report", ignore_errors=True)
    assert report_script.main(["--results", str(results), "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "tables: linear, few_shot_2way1shot, few_shot_2way2shot, calibration, correlation" in out
    table = (tmp_path / "report" / "tables" / "linear.md").read_text()
    assert "| model | aircraft | dtd |" in table and "| tiny |" in table
    assert "average left out: 2 of the paper's 11 datasets" in table


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
