"""sweep.py --executor slurm against a real one-node cluster (the ``slurm_cluster`` fixture):
records equal to the local executor's, --slurm-* options in the jobs, cancelled, requeued and
orphaned jobs. Run with ``python -m pytest -m slurm``; the cells are a tiny random-init timm
model on scikit-learn's digits, so nothing is downloaded."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tools.slurm_cluster import SlurmCluster
from transfer.sweep import PROTOCOLS

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
MODEL = "timm:test_resnet"
NAME = "timm-test_resnet"  # the model as cell and record names write it
GRID = ["--models", MODEL, "--datasets", "digits", "--device", "cpu", "--image-size", "32",
        "--workers", "0", "--n-support", "5",
        "--extra", "linear=--random-init -w 3", "--extra", "knn=--random-init",
        "--extra", "few_shot=--random-init --iter-num 20",
        "--extra", "finetune=--random-init --steps 12 --checkpoint-every 4 --lr 0.01 --wd 0 "
                   "-b 16"]
SMALL_JOBS = ["--slurm-gpus", "0", "--slurm-cpus", "1", "--slurm-mem-gb", "2",
              "--slurm-time", "30"]
# differ between any two runs of the same cell: when and how long, on what, where its files went
# and whether a feature cache entry was there already
RUN_FIELDS = {"timings", "created", "device", "features_cached", "results_dir", "cache_dir",
              "seconds", "train_seconds", "images_per_s", "resumed_from_step"}


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory) -> Path:
    """One cache for the Slurm runs of this module: after the first, cells read features."""
    return tmp_path_factory.mktemp("slurm-feature-cache")


def _argv(results: Path, cache: Path, protocols: list[str], *more: str) -> list[str]:
    return [sys.executable, str(REPO / "sweep.py"), *GRID, "--protocols", *protocols,
            "--results-dir", str(results), "--cache-dir", str(cache), *more]


def _sweep(cluster: SlurmCluster, argv: list[str], timeout: float = 900
           ) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=cluster.env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def _start(cluster: SlurmCluster, argv: list[str], out: Path) -> subprocess.Popen:
    with open(out, "w") as handle:
        return subprocess.Popen(argv, env=cluster.env, cwd=REPO, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _until(what: str, ready: Callable[[], object], timeout: float = 300) -> object:
    deadline = time.monotonic() + timeout
    while not (value := ready()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return value


def _queue(cluster: SlurmCluster) -> dict[str, tuple[str, str]]:
    """Every job the cluster still lists (finished ones too): id -> (state, name)."""
    out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%j"], env=cluster.env,
                         capture_output=True, text=True, check=True).stdout
    return {f[0]: (f[1], f[2]) for f in (line.split("|", 2) for line in out.splitlines())}


def _show_job(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], env=cluster.env,
                         capture_output=True, text=True, check=True).stdout
    return dict(item.split("=", 1) for item in out.split() if "=" in item)


def _slurm(cluster: SlurmCluster, *args: str) -> str:
    return subprocess.run(list(args), env=cluster.env, capture_output=True, text=True,
                          check=True).stdout


@contextmanager
def _node_busy(cluster: SlurmCluster) -> Iterator[str]:
    """A job holding every CPU of the node, so the sweep's jobs stay pending until it ends."""
    cpus = _slurm(cluster, "sinfo", "-h", "-N", "-p", "debug", "-o", "%c").split()[0]
    job_id = _slurm(cluster, "sbatch", "--parsable", "-J", "blocker", "-c", cpus, "--mem=100M",
                    "-o", "/dev/null", "--wrap", "sleep 900").strip()
    try:
        _until("the blocker to run", lambda: _queue(cluster)[job_id][0] == "RUNNING", 60)
        yield job_id
    finally:
        subprocess.run(["scancel", job_id], env=cluster.env, check=False)


def _row(out: str, first: str) -> list[str]:
    """The summary table's row that starts with ``first``."""
    return next(line.split() for line in out.splitlines() if line.split()[:1] == [first])


def _records(results: Path) -> dict[str, object]:
    """Every result record under ``results``, without the fields of the run itself."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in RUN_FIELDS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return {str(path.relative_to(results)): strip(json.loads(path.read_text()))
            for protocol in PROTOCOLS for path in sorted(results.glob(f"{protocol}/*.json"))}


def test_a_job_array_writes_the_records_of_the_local_executor(slurm_cluster, feature_cache,
                                                              tmp_path):
    protocols = ["linear", "knn", "few_shot"]
    local = _sweep(slurm_cluster, _argv(tmp_path / "local", tmp_path / "local-cache", protocols,
                                        "--executor", "local"))
    assert local.returncode == 0, local.stdout + local.stderr
    run = _sweep(slurm_cluster, _argv(tmp_path / "slurm", feature_cache, protocols,
                                      "--executor", "slurm", "--wait", *SMALL_JOBS))
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "sacct" not in out and "Bypassing" not in out
    assert ("Slurm accounting is off on this cluster (AccountingStorageType="
            "accounting_storage/none): job states come from squeue") in out
    submitted = re.findall(r"submitted (\S+): job (\d+)_(\d)", out)
    assert [name for name, _, _ in submitted] == [f"{p}/{NAME}__digits" for p in protocols]
    assert len({array for _, array, _ in submitted}) == 1  # one job array
    assert _row(run.stdout, "total") == ["total", "3", "0", "0"]
    assert "jobs: 0 pending, 0 running, 3 done, 0 failed" in out
    queue = _queue(slurm_cluster)
    for name, array, task in submitted:  # each task is named after its cell
        assert queue[f"{array}_{task}"] == ("COMPLETED", name)

    local_records, slurm_records = _records(tmp_path / "local"), _records(tmp_path / "slurm")
    assert sorted(slurm_records) == sorted(local_records) and len(local_records) == 3
    for name, record in local_records.items():
        assert slurm_records[name] == record, name

    # progress bars in a job's log: a redraw per 30 s, not per step (tqdm's default: ~0.1 s)
    array = submitted[0][1]
    err = (tmp_path / "slurm" / "sweep_logs" / "submitit" / f"{array}_0" /
           f"{array}_0_0_log.err").read_text()
    assert 1 <= err.count("logreg C grid") <= 2


def test_slurm_options_reach_the_jobs_and_a_rerun_waits_for_them(slurm_cluster, feature_cache,
                                                                 tmp_path):
    argv = _argv(tmp_path / "results", feature_cache, ["linear", "knn"], "--executor", "slurm",
                 "--slurm-partition", "long", "--slurm-time", "7", "--slurm-cpus", "1",
                 "--slurm-mem-gb", "1", "--slurm-gpus", "0", "--slurm-array-parallelism", "1")
    with _node_busy(slurm_cluster):
        first = _sweep(slurm_cluster, argv)
        assert first.returncode == 0, first.stdout + first.stderr
        jobs = dict(re.findall(r"submitted (\S+): job (\d+_\d)", first.stdout))
        assert sorted(jobs) == [f"knn/{NAME}__digits", f"linear/{NAME}__digits"]
        assert _row(first.stdout, "protocol") == ["protocol", "done", "failed", "skipped",
                                                  "pending"]
        assert _row(first.stdout, "total") == ["total", "0", "0", "0", "2"]
        assert "rerun it with --wait to wait for them" in first.stdout
        for name, job_id in jobs.items():
            job = _show_job(slurm_cluster, job_id)
            assert job["JobName"] == name
            assert job["Partition"] == "long"
            assert job["TimeLimit"] == "00:07:00"
            assert job["NumCPUs"] == "1" and job["MinMemoryNode"] == "1G"
            assert job["ArrayTaskThrottle"] == "1"
            assert job["JobState"] == "PENDING"

        rerun = _start(slurm_cluster, [*argv, "--wait"], tmp_path / "rerun.out")
        try:
            _until("the rerun to collect both jobs",
                   lambda: (tmp_path / "rerun.out").read_text().count("already queued") == 2)
            for job_id in jobs.values():  # cancelled before they ever ran
                _slurm(slurm_cluster, "scancel", job_id)
            assert rerun.wait(timeout=120) == 1
        finally:
            rerun.kill()
    out = (tmp_path / "rerun.out").read_text()
    assert "submitted" not in out
    for name, job_id in jobs.items():
        assert f"already queued: {name} is job {job_id} (PENDING)" in out
        log = (tmp_path / "results" / "sweep_logs" / "submitit" / job_id /
               f"{job_id}_0_log.err")
        assert f"FAILED {name} (job {job_id}: cancelled before it started); log: {log}" in out


def test_a_cancelled_job_fails_with_its_log_and_a_rerun_submits_only_its_cell(
        slurm_cluster, feature_cache, tmp_path):
    argv = _argv(tmp_path / "results", feature_cache, ["linear", "knn"], "--executor", "slurm",
                 "--wait", *SMALL_JOBS)
    sweep = _start(slurm_cluster, argv, tmp_path / "first.out")
    try:
        knn = f"knn/{NAME}__digits"
        job_id = _until("the knn job to run", lambda: next(
            (i for i, (state, name) in _queue(slurm_cluster).items()
             if name == knn and state == "RUNNING"), None))
        _slurm(slurm_cluster, "scancel", job_id)
        assert sweep.wait(timeout=600) == 1
    finally:
        sweep.kill()
    out = (tmp_path / "first.out").read_text()
    log = tmp_path / "results" / "sweep_logs" / "submitit" / job_id / f"{job_id}_0_log.err"
    assert f"FAILED {knn} (job {job_id}: cancelled); log: {log}" in out
    assert "CANCELLED" in log.read_text()
    assert f"  {knn}: job {job_id}: cancelled (log: {log})" in out  # and in the summary
    assert _row(out, "total") == ["total", "1", "1", "0"]

    rerun = _sweep(slurm_cluster, argv)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "2 cells: 1 to run, 1 with results" in rerun.stdout
    assert re.findall(r"submitted (\S+): job", rerun.stdout) == [knn]
    assert "jobs: 0 pending, 0 running, 1 done, 0 failed" in rerun.stdout


def test_a_killed_sweep_leaves_its_jobs_running_and_a_rerun_collects_them(
        slurm_cluster, feature_cache, tmp_path):
    argv = _argv(tmp_path / "results", feature_cache, ["linear", "knn"], "--executor", "slurm",
                 "--wait", *SMALL_JOBS)
    earlier = set(_queue(slurm_cluster))  # jobs of other tests, with the same cells' names
    with _node_busy(slurm_cluster) as blocker:
        first = _start(slurm_cluster, argv, tmp_path / "first.out")
        try:
            _until("both jobs to be submitted",
                   lambda: (tmp_path / "first.out").read_text().count("submitted ") == 2)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        finally:
            first.kill()
        jobs = dict(re.findall(r"submitted (\S+): job (\d+_\d)",
                               (tmp_path / "first.out").read_text()))
        queue = _queue(slurm_cluster)
        assert {queue[job_id] for job_id in jobs.values()} == {
            ("PENDING", name) for name in jobs}  # the cluster's: they go on without the sweep
        rerun = _start(slurm_cluster, argv, tmp_path / "rerun.out")
        try:
            _until("the rerun to collect both jobs",
                   lambda: (tmp_path / "rerun.out").read_text().count("already queued") == 2)
            _slurm(slurm_cluster, "scancel", blocker)
            assert rerun.wait(timeout=600) == 0, (tmp_path / "rerun.out").read_text()
        finally:
            rerun.kill()
    out = (tmp_path / "rerun.out").read_text()
    assert "submitted" not in out
    assert "jobs: 0 pending, 0 running, 2 done, 0 failed" in out
    queue = _queue(slurm_cluster)
    ours = {job_id for job_id, (_, name) in queue.items() if name in jobs} - earlier
    assert ours == set(jobs.values())  # no second job for either cell
    assert {queue[job_id][0] for job_id in ours} == {"COMPLETED"}


def test_a_requeued_finetune_cell_resumes_and_ends_as_an_uninterrupted_run(
        slurm_cluster, feature_cache, tmp_path):
    local = _sweep(slurm_cluster, _argv(tmp_path / "local", feature_cache, ["finetune"],
                                        "--executor", "local"))
    assert local.returncode == 0, local.stdout + local.stderr
    results = tmp_path / "slurm"
    sweep = _start(slurm_cluster, _argv(results, feature_cache, ["finetune"], "--executor",
                                        "slurm", "--wait", *SMALL_JOBS), tmp_path / "sweep.out")
    try:
        job_id = _until("the finetune job", lambda: re.search(
            r"submitted finetune/\S+: job (\d+)", (tmp_path / "sweep.out").read_text()))[1]
        _until("a checkpoint", lambda: list(results.glob("finetune/*/ckpt/*.pt")), 600)
        _slurm(slurm_cluster, "scontrol", "requeue", job_id)
        # Slurm holds a requeued job for two minutes (BeginTime); let it start again now
        _until("the job to be pending again",
               lambda: _show_job(slurm_cluster, job_id)["JobState"] == "PENDING", 60)
        _slurm(slurm_cluster, "scontrol", "update", f"JobId={job_id}", "StartTime=now")
        assert sweep.wait(timeout=600) == 0, (tmp_path / "sweep.out").read_text()
    finally:
        sweep.kill()
    out = (tmp_path / "sweep.out").read_text()
    assert "FAILED" not in out and "jobs: 0 pending, 0 running, 1 done, 0 failed" in out
    assert _show_job(slurm_cluster, job_id)["Restarts"] == "1"
    logs = "".join((results / "sweep_logs" / "submitit" / job_id / f"{job_id}_0_log.{kind}"
                    ).read_text() for kind in ("out", "err"))
    assert re.search(r"resuming from step (4|8) of 12", logs)
    (record,) = results.glob("finetune/*.json")
    assert json.loads(record.read_text())["resumed_from_step"] in (4, 8)
    assert json.loads((tmp_path / "local" / record.relative_to(results)).read_text())[
        "resumed_from_step"] == 0
    local_records, slurm_records = _records(tmp_path / "local"), _records(results)
    assert sorted(slurm_records) == sorted(local_records) and len(local_records) == 1
    for name, record in local_records.items():
        assert slurm_records[name] == record, name
