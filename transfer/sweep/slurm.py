"""Run the cells as Slurm jobs through submitit: one job per cell, submitted as one job array."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.registry import REPO_ROOT
from transfer.sweep.plan import Cell, SweepError
from transfer.sweep.summary import Outcome, finished, log_tail


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of one cell's job; the defaults fit the slowest cell (a 21-run finetune grid)."""

    partition: str | None = None
    time_min: int = 1440
    gpus: int = 1
    cpus: int = 10
    mem_gb: int | None = None
    array_parallelism: int = 64
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None

    def executor_parameters(self) -> dict[str, Any]:
        """submitit ``AutoExecutor.update_parameters`` keywords."""
        params: dict[str, Any] = {"timeout_min": self.time_min, "gpus_per_node": self.gpus,
                                  "cpus_per_task": self.cpus, "nodes": 1, "tasks_per_node": 1,
                                  "slurm_array_parallelism": self.array_parallelism}
        if self.mem_gb is not None:
            params["mem_gb"] = self.mem_gb
        for key, value in (("slurm_partition", self.partition), ("slurm_account", self.account),
                           ("slurm_qos", self.qos), ("slurm_constraint", self.constraint)):
            if value is not None:
                params[key] = value
        return params


def make_executor(folder: Path, options: SlurmOptions, cluster: str | None = "slurm") -> Any:
    """A submitit executor writing job logs under ``folder``; ``cluster`` is ``slurm``, ``local``
    or ``debug`` (the last two run on this machine, for tests and dry checks)."""
    import submitit

    try:
        executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=cluster)
    except RuntimeError as error:  # e.g. no srun on this machine
        raise SweepError(f"--executor slurm: {error} (run sweep.py on a Slurm login node, or "
                         "use --executor local)") from error
    executor.update_parameters(name="ssl-transfer", **options.executor_parameters())
    return executor


def _job_failure(error: Exception, job: Any) -> str:
    """The exit code in submitit's trace and the error lines of the job's stderr."""
    text = str(error)
    code = re.search(r"returned non-zero exit status (-?\d+)", text)
    tail = log_tail(Path(str(job.paths.stderr)))
    if code:
        return f"exit code {code.group(1)}" + (f": {tail}" if tail else "")
    return next((line for line in text.splitlines() if line.strip()), type(error).__name__)


def submit_cells(cells: Sequence[Cell], executor: Any, wait: bool = False) -> list[Outcome]:
    """Submit one job per cell (a job array where the executor has them); with ``wait``, wait and
    report done / failed, else report the job ids as submitted."""
    from submitit.helpers import CommandFunction

    if not cells:
        return []
    start = time.perf_counter()
    with executor.batch():
        jobs = [executor.submit(CommandFunction(list(cell.argv), verbose=True, cwd=str(REPO_ROOT)))
                for cell in cells]
    outcomes = []
    for cell, job in zip(cells, jobs, strict=True):
        log = Path(str(job.paths.stdout))
        if not wait:
            outcomes.append(Outcome(cell, "submitted", 0.0, "", log, str(job.job_id)))
            continue
        try:
            job.result()
        except Exception as error:  # submitit raises FailedJobError / UncompletedJobError
            outcomes.append(Outcome(cell, "failed", time.perf_counter() - start,
                                    f"job {job.job_id}: {_job_failure(error, job)}", log,
                                    str(job.job_id)))
            continue
        status, detail = finished(cell)
        outcomes.append(Outcome(cell, status, time.perf_counter() - start, detail, log,
                                str(job.job_id)))
    return outcomes

