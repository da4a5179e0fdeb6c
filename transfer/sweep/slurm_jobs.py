"""The jobs of a Slurm sweep: which job runs which cell, waiting for them, and what each one's
end means for its cell.

Which job runs which cell is kept in ``<log dir>/slurm_jobs.json``, so that a rerun (the sweep
was killed, or ran without ``--wait``) finds the jobs of its cells still queued or running and
collects them instead of submitting the same cells twice. A job's state comes from squeue
(``slurm_queue``); its result file is read only once Slurm says it ended, because a requeued
job (``scontrol requeue``, preemption) leaves the error result of its killed first run behind
and then runs again.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from transfer.atomic import write_json_atomic
from transfer.sweep.plan import Cell
from transfer.sweep.slurm_queue import QueueEntry, accounting_states, queue_states
from transfer.sweep.summary import Outcome, finished, log_tail

log = logging.getLogger(__name__)

RECORD_NAME = "slurm_jobs.json"
MAX_POLL_S = 30.0


@dataclass(frozen=True)
class CellJob:
    """A cell's job: its id (``12_3`` for an array task) and submitit's files for it."""

    cell: Cell
    job_id: str
    stdout: Path
    stderr: Path
    result: Path  # submitit's result pickle: ("success", stdout) or ("error", traceback)


def cell_key(cell: Cell) -> str:
    """What identifies a cell across runs: its name and the result files it must write (so a
    cell with other options, named in its files, is another cell)."""
    return " ".join([cell.name, *sorted(map(str, cell.outputs))])


class JobRecord:
    """``<log dir>/slurm_jobs.json``: the last job submitted for each cell."""

    def __init__(self, log_dir: Path) -> None:
        self.path = Path(log_dir) / RECORD_NAME

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            log.warning("ignoring the unreadable job record %s: %s", self.path, error)
            return {}
        return data if isinstance(data, dict) else {}

    def jobs_of(self, cells: Sequence[Cell]) -> list[CellJob]:
        """The recorded job of each of ``cells`` that has one, in the order of ``cells``."""
        data = self._load()
        jobs = []
        for cell in cells:
            entry = data.get(cell_key(cell))
            if isinstance(entry, dict) and {"job_id", "stdout", "stderr", "result"} <= set(entry):
                jobs.append(CellJob(cell, str(entry["job_id"]), Path(entry["stdout"]),
                                    Path(entry["stderr"]), Path(entry["result"])))
        return jobs

    def add(self, jobs: Sequence[CellJob]) -> None:
        """Record ``jobs`` (replacing earlier jobs of the same cells), atomically."""
        data = self._load()
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for job in jobs:
            data[cell_key(job.cell)] = {"cell": job.cell.name, "job_id": job.job_id,
                                        "stdout": str(job.stdout), "stderr": str(job.stderr),
                                        "result": str(job.result), "submitted": now}
        write_json_atomic(self.path, data)


def _read_result(path: Path) -> tuple[str, str] | None:
    from submitit.core.utils import pickle_load

    try:
        outcome, payload = pickle_load(path)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    return str(outcome), str(payload)


def _exit_detail(trace: str, stderr: Path) -> str:
    """How the cell's command ended, from submitit's traceback, and the error lines of its log."""
    code = re.search(r"returned non-zero exit status (-?\d+)", trace)
    killed = re.search(r"died with <Signals\.(\w+)", trace)
    what = (f"exit code {code.group(1)}" if code else f"killed by {killed.group(1)}" if killed
            else "failed")
    tail = log_tail(stderr)
    return f"{what}: {tail}" if tail else what


def job_outcome(job: CellJob, state: str | None, seconds: float = 0.0) -> Outcome:
    """The outcome of a job that has ended: ``state`` is its final Slurm state, None when the
    cluster no longer knows the job (then its result file decides)."""
    result = _read_result(job.result)

    def failed(detail: str) -> Outcome:
        return Outcome(job.cell, "failed", seconds, f"job {job.job_id}: {detail}", job.stderr,
                       job.job_id)

    if state == "COMPLETED" or (state is None and result and result[0] == "success"):
        status, detail = finished(job.cell)
        return Outcome(job.cell, status, seconds, detail,
                       job.stdout if status == "done" else job.stderr, job.job_id)
    if state == "CANCELLED":
        started = job.stdout.exists() or job.stderr.exists()
        return failed("cancelled" + ("" if started else " before it started"))
    if state == "TIMEOUT" or (result and "timed-out" in result[1]):
        return failed("reached its time limit (--slurm-time); rerun the sweep to go on")
    if state == "OUT_OF_MEMORY":
        return failed("ran out of memory (raise --slurm-mem-gb)")
    if result and result[0] == "error":
        return failed(_exit_detail(result[1], job.stderr))
    if state is None:
        return failed("left the queue without a result")
    tail = log_tail(job.stderr)
    return failed(f"ended {state}" + (f": {tail}" if tail else ""))


def counts_line(counts: Counter) -> str:
    return ", ".join(f"{counts[s]} {s}" for s in ("pending", "running", "done", "failed"))


def current_outcomes(jobs: Sequence[CellJob],
                     entries: dict[str, QueueEntry] | None) -> list[Outcome]:
    """Each job's state now, without waiting: pending or running, or its end if it ended
    (``entries`` None: squeue failed, so every job counts as pending)."""
    outcomes = []
    for job in jobs:
        if entries is None:
            outcomes.append(Outcome(job.cell, "pending", detail=f"job {job.job_id}",
                                    log=job.stdout, job_id=job.job_id))
            continue
        entry = entries.get(job.job_id)
        if entry is None or entry.final:
            outcomes.append(job_outcome(job, entry.state if entry else None))
        else:
            outcomes.append(Outcome(job.cell, "pending" if entry.pending else "running",
                                    detail=f"job {job.job_id}: {entry.state}", log=job.stdout,
                                    job_id=job.job_id))
    return outcomes


def wait_for_jobs(jobs: Sequence[CellJob], accounting: bool, say: Callable[[str], None],
                  sleep: Callable[[float], None] = time.sleep) -> list[Outcome]:
    """Wait until every job has ended, asking squeue (one call for all of them) every few
    seconds, then at most every ``MAX_POLL_S``; says each failure with its log when it happens
    and the counts of pending, running, done and failed jobs whenever they change."""
    start = time.monotonic()
    outcomes: dict[int, Outcome] = {}
    last = ""
    while len(outcomes) < len(jobs):
        open_jobs = [(i, job) for i, job in enumerate(jobs) if i not in outcomes]
        entries = queue_states(job.job_id for _, job in open_jobs)
        if entries is not None:
            gone = [job.job_id for _, job in open_jobs if job.job_id not in entries]
            ended = accounting_states(gone) if accounting and gone else {}
            counts: Counter = Counter()
            for i, job in open_jobs:
                entry = entries.get(job.job_id)
                if entry is not None and not entry.final:
                    counts["pending" if entry.pending else "running"] += 1
                    continue
                state = entry.state if entry is not None else ended.get(job.job_id)
                outcomes[i] = job_outcome(job, state, time.monotonic() - start)
                if outcomes[i].status == "failed":
                    say(f"FAILED {job.cell.name} ({outcomes[i].detail}); log: {outcomes[i].log}")
            counts.update(o.status for o in outcomes.values())
            if (line := counts_line(counts)) != last:
                say(f"jobs: {line}")
                last = line
        if len(outcomes) < len(jobs):
            sleep(min(MAX_POLL_S, 2.0 + (time.monotonic() - start) / 10))
    return [outcomes[i] for i in range(len(jobs))]
