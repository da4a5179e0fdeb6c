"""The Slurm side of the sweep without a cluster: what a job's end means for its cell, waiting on
squeue's states (a requeued job's stale error result is not an end), the record that lets a rerun
collect queued jobs, the resource checks. The same paths against a real cluster:
tests/cli/test_sweep_slurm.py (``-m slurm``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from submitit.core.utils import cloudpickle_dump

from transfer import sweep
from transfer.sweep import Cell, SlurmOptions, SweepError, slurm_jobs
from transfer.sweep import slurm as slurm_module
from transfer.sweep.slurm_jobs import CellJob, JobRecord, job_outcome, wait_for_jobs
from transfer.sweep.slurm_queue import ClusterInfo, QueueEntry
from transfer.sweep.summary import log_tail

# how submitit's CommandFunction reports a failed command (CalledProcessError's own wording)
EXIT_4 = ("subprocess.CalledProcessError: Command '['python', 'linear.py']' returned non-zero "
          "exit status 4.\n\nThe above exception was the direct cause of the following exception:"
          "\n\nsubmitit.core.utils.FailedJobError: linear.py: error: no data")
KILLED = "subprocess.CalledProcessError: Command '['python']' died with <Signals.SIGTERM: 15>."


def _job(tmp_path: Path, name: str = "c", *, written: bool = False, result=None,
         stderr: str | None = None, stdout: str | None = None) -> CellJob:
    output = tmp_path / "results" / f"{name}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    if written:
        output.write_text("{}")
    folder = tmp_path / "submitit" / f"9_{name}"
    folder.mkdir(parents=True, exist_ok=True)
    job = CellJob(Cell("linear", "m", name, ("python", "linear.py"), (output,)), f"9_{name}",
                  folder / "log.out", folder / "log.err", folder / "result.pkl")
    if result is not None:
        cloudpickle_dump(result, job.result)
    if stderr is not None:
        job.stderr.write_text(stderr)
    if stdout is not None:
        job.stdout.write_text(stdout)
    return job


def test_a_completed_job_is_done_only_with_its_result_files(tmp_path):
    done = job_outcome(_job(tmp_path, "a", written=True, stdout="ok"), "COMPLETED", 3.0)
    assert (done.status, done.detail, done.log, done.seconds) == ("done", "", done.log, 3.0)
    assert done.log.name == "log.out"
    empty = job_outcome(_job(tmp_path, "b"), "COMPLETED")
    assert empty.status == "failed"
    assert empty.detail.startswith("exited 0 but wrote no ")
    # squeue forgot the job (MinJobAge) and there is no accounting: the result file decides
    gone = job_outcome(_job(tmp_path, "c", written=True, result=("success", "")), None)
    assert gone.status == "done"


def test_failed_jobs_say_why_with_their_log(tmp_path):
    err = ("linear.py: error: no data\nsubmitit.core.utils.FailedJobError: linear.py: error: "
           "no data\nlinear.py: error: no data\nsrun: error: vm: task 0: Exited with exit code 1\n")
    exited = job_outcome(_job(tmp_path, "a", result=("error", EXIT_4), stderr=err), "FAILED")
    assert exited.status == "failed"
    assert exited.detail == "job 9_a: exit code 4: linear.py: error: no data"
    assert exited.log == tmp_path / "submitit" / "9_a" / "log.err"
    killed = job_outcome(_job(tmp_path, "b", result=("error", KILLED), stderr="..."), "FAILED")
    assert killed.detail == "job 9_b: killed by SIGTERM: ..."
    assert job_outcome(_job(tmp_path, "c"), "CANCELLED").detail == (
        "job 9_c: cancelled before it started")
    running_then_cancelled = _job(tmp_path, "d", result=("error", KILLED), stderr="x")
    assert job_outcome(running_then_cancelled, "CANCELLED").detail == "job 9_d: cancelled"
    assert "time limit (--slurm-time)" in job_outcome(_job(tmp_path, "e"), "TIMEOUT").detail
    assert "--slurm-mem-gb" in job_outcome(_job(tmp_path, "f"), "OUT_OF_MEMORY").detail
    assert job_outcome(_job(tmp_path, "g"), None).detail == (
        "job 9_g: left the queue without a result")
    assert job_outcome(_job(tmp_path, "h", stderr="node died\n"), "NODE_FAIL").detail == (
        "job 9_h: ended NODE_FAIL: node died")


def test_log_tail_skips_the_job_wrappers_lines_and_repeats(tmp_path):
    log = tmp_path / "log.err"
    log.write_text("bar 10%\rbar 100%\nknn.py: error: bad k\nslurmstepd-vm: error: *** JOB 4 "
                   "CANCELLED ***\nsrun: error: task 0: Exited\nknn.py: error: bad k\n")
    assert log_tail(log) == "knn.py: error: bad k"


def _queue(*steps: dict[str, tuple[str, str]]) -> Iterator[dict[str, QueueEntry] | None]:
    for step in steps:
        yield None if step is None else {
            job_id: QueueEntry(state, "None", name) for job_id, (state, name) in step.items()}


def test_waiting_follows_squeue_not_a_stale_result_of_a_requeued_job(tmp_path, monkeypatch):
    ft = _job(tmp_path, "ft")
    other = _job(tmp_path, "x")
    steps = _queue(
        {"9_ft": ("PENDING", "n"), "9_x": ("RUNNING", "n")},
        None,  # squeue failed once: nothing is concluded
        {"9_ft": ("RUNNING", "n"), "9_x": ("RUNNING", "n")},
        {"9_ft": ("PENDING", "n"), "9_x": ("CANCELLED", "n")},  # ft requeued
        {"9_ft": ("RUNNING", "n")},  # x gone from squeue: no longer asked about
        {"9_ft": ("COMPLETED", "n")},
    )
    asked: list[list[str]] = []

    def fake_queue(job_ids):
        asked.append(sorted(job_ids))
        if len(asked) == 4:  # the requeue killed the first run: its error result stays behind
            cloudpickle_dump(("error", KILLED), ft.result)
        if len(asked) == 6:
            ft.cell.outputs[0].write_text("{}")
            cloudpickle_dump(("success", ""), ft.result)
        return next(steps)

    monkeypatch.setattr(slurm_jobs, "queue_states", fake_queue)
    said: list[str] = []
    outcomes = wait_for_jobs([ft, other], accounting=False, say=said.append,
                             sleep=lambda seconds: None)
    assert [o.status for o in outcomes] == ["done", "failed"]
    assert asked[4] == ["9_ft"]
    assert said == [
        "jobs: 1 pending, 1 running, 0 done, 0 failed",
        "jobs: 0 pending, 2 running, 0 done, 0 failed",
        f"FAILED linear/m__x (job 9_x: cancelled before it started); log: {other.stderr}",
        "jobs: 1 pending, 0 running, 0 done, 1 failed",
        "jobs: 0 pending, 1 running, 0 done, 1 failed",
        "jobs: 0 pending, 0 running, 1 done, 1 failed",
    ]


def test_with_accounting_a_job_gone_from_squeue_gets_its_state_from_sacct(tmp_path,
                                                                           monkeypatch):
    job = _job(tmp_path, "a", result=("error", KILLED))
    monkeypatch.setattr(slurm_jobs, "queue_states", lambda ids: {})
    monkeypatch.setattr(slurm_jobs, "accounting_states", lambda ids: {"9_a": "TIMEOUT"})
    (outcome,) = wait_for_jobs([job], accounting=True, say=lambda line: None)
    assert "time limit" in outcome.detail


def test_the_record_keeps_one_job_per_cell_and_tells_other_options_apart(tmp_path):
    first, second = _job(tmp_path, "a"), _job(tmp_path, "b")
    record = JobRecord(tmp_path / "logs")
    assert record.jobs_of([first.cell]) == []
    record.add([first, second])
    again = CellJob(first.cell, "12_0", first.stdout, first.stderr, first.result)
    record.add([again])
    assert record.jobs_of([second.cell, first.cell]) == [second, again]
    # the same name with other result files (other options) is another cell
    other = Cell("linear", "m", "a", (), (tmp_path / "results" / "a__i32.json",))
    assert other.name == first.cell.name and record.jobs_of([other]) == []
    data = json.loads((tmp_path / "logs" / "slurm_jobs.json").read_text())
    assert {entry["job_id"] for entry in data.values()} == {"12_0", "9_b"}
    (tmp_path / "logs" / "slurm_jobs.json").write_text("{not json")
    assert record.jobs_of([first.cell]) == []  # unreadable: as if there were none


def test_slurm_options_are_checked_before_anything_is_submitted():
    for options, message in ((SlurmOptions(time_min=0), "--slurm-time 0: expected at least 1"),
                             (SlurmOptions(cpus=0), "--slurm-cpus 0: expected at least 1"),
                             (SlurmOptions(gpus=-1), "--slurm-gpus -1: expected at least 0"),
                             (SlurmOptions(mem_gb=0), "--slurm-mem-gb 0: expected at least 1"),
                             (SlurmOptions(array_parallelism=0),
                              "--slurm-array-parallelism 0: expected at least 1")):
        with pytest.raises(SweepError, match=message):
            options.check()
    assert SlurmOptions(partition="long", time_min=7, gpus=0, cpus=1, mem_gb=2,
                        qos="low").sbatch_flags() == [
        "--time=7", "--cpus-per-task=1", "--nodes=1", "--ntasks-per-node=1", "--mem=2G",
        "--partition=long", "--qos=low"]
    assert "--gpus-per-node=2" in SlurmOptions(gpus=2).sbatch_flags()


def test_a_rerun_collects_its_queued_jobs_and_submits_the_others(tmp_path, monkeypatch):
    queued, finished, foreign = (_job(tmp_path, name) for name in ("q", "f", "o"))
    JobRecord(tmp_path).add([queued, finished, foreign])
    monkeypatch.setattr(slurm_module, "cluster_info",
                        lambda: ClusterInfo("c", "accounting_storage/none"))
    monkeypatch.setattr(slurm_module, "check_resources", lambda flags: None)
    monkeypatch.setattr(slurm_module, "make_executor", lambda folder, options: None)
    # 9_o runs, but under another name: a job id reused by another cluster, not this cell's
    monkeypatch.setattr(slurm_module, "queue_states", lambda ids: {
        "9_q": QueueEntry("RUNNING", "None", queued.cell.name),
        "9_f": QueueEntry("CANCELLED", "None", finished.cell.name),
        "9_o": QueueEntry("RUNNING", "None", "linear/other")})
    submitted = []

    def fake_submit(cells, executor):
        submitted.extend(cells)
        return [CellJob(c, f"20_{i}", c.outputs[0], c.outputs[0], c.outputs[0])
                for i, c in enumerate(cells)]

    monkeypatch.setattr(slurm_module, "submit_cells", fake_submit)
    said: list[str] = []
    cells = [queued.cell, finished.cell, foreign.cell]
    outcomes = sweep.run_on_slurm(cells, SlurmOptions(gpus=0, cpus=1), tmp_path, wait=False,
                                  say=said.append)
    assert submitted == [finished.cell, foreign.cell]
    assert said[0].startswith("Slurm accounting is off on this cluster")
    assert said[1] == ("already queued: linear/m__q is job 9_q (RUNNING); collecting it, not "
                       "submitting it again")
    assert said[2:] == ["submitted linear/m__f: job 20_0", "submitted linear/m__o: job 20_1"]
    assert [o.job_id for o in outcomes] == ["9_q", "20_0", "20_1"]
    assert outcomes[0].status == "running"
    assert [job.job_id for job in JobRecord(tmp_path).jobs_of(cells)] == ["9_q", "20_0", "20_1"]
