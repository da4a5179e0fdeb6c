"""Run the cells as Slurm jobs: one job per cell, submitted through submitit as one job array,
each task named after its cell; states from squeue (``slurm_queue``), jobs recorded per cell so
a rerun collects those still queued (``slurm_jobs``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.registry import REPO_ROOT
from transfer.sweep.plan import Cell, SweepError
from transfer.sweep.slurm_jobs import CellJob, JobRecord, current_outcomes, wait_for_jobs
from transfer.sweep.slurm_queue import check_resources, cluster_info, queue_states, rename_job
from transfer.sweep.summary import Outcome


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

    def check(self) -> None:
        """Impossible sizes are an error before anything is planned or submitted."""
        sizes = [("--slurm-time", self.time_min, 1, " (minutes)"),
                 ("--slurm-gpus", self.gpus, 0, ""),
                 ("--slurm-cpus", self.cpus, 1, ""),
                 ("--slurm-array-parallelism", self.array_parallelism, 1, "")]
        if self.mem_gb is not None:
            sizes.append(("--slurm-mem-gb", self.mem_gb, 1, " (GB)"))
        for flag, value, least, unit in sizes:
            if value < least:
                raise SweepError(f"{flag} {value}: expected at least {least}{unit}")

    def executor_parameters(self) -> dict[str, Any]:
        """submitit ``AutoExecutor.update_parameters`` keywords (no GPU request for 0 GPUs:
        a cluster without GPUs may refuse even ``--gpus-per-node=0``)."""
        params: dict[str, Any] = {"timeout_min": self.time_min, "cpus_per_task": self.cpus,
                                  "nodes": 1, "tasks_per_node": 1,
                                  "slurm_array_parallelism": self.array_parallelism}
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        if self.mem_gb is not None:
            params["mem_gb"] = self.mem_gb
        for key, value in (("slurm_partition", self.partition), ("slurm_account", self.account),
                           ("slurm_qos", self.qos), ("slurm_constraint", self.constraint)):
            if value is not None:
                params[key] = value
        return params

    def sbatch_flags(self) -> list[str]:
        """The same resources as sbatch options, for ``sbatch --test-only``."""
        flags = [f"--time={self.time_min}", f"--cpus-per-task={self.cpus}", "--nodes=1",
                 "--ntasks-per-node=1"]
        if self.gpus:
            flags.append(f"--gpus-per-node={self.gpus}")
        if self.mem_gb is not None:
            flags.append(f"--mem={self.mem_gb}G")
        for flag, value in (("--partition", self.partition), ("--account", self.account),
                            ("--qos", self.qos), ("--constraint", self.constraint)):
            if value is not None:
                flags.append(f"{flag}={value}")
        return flags


# The script's output reaches the job's log as it is printed, not when a pipe buffer fills
# (its progress bars write a line at most every 30 s there: transfer.console).
_JOB_SETUP = ["export PYTHONUNBUFFERED=1"]


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
    if executor.cluster == "slurm":
        executor.update_parameters(slurm_setup=list(_JOB_SETUP))
    return executor


def submit_cells(cells: Sequence[Cell], executor: Any) -> list[CellJob]:
    """Submit one job per cell (a job array where the executor has them); on Slurm each job is
    named after its cell (``linear/byol__dtd``), so squeue says what runs."""
    from submitit.core.utils import FailedJobError
    from submitit.helpers import CommandFunction

    if not cells:
        return []
    try:
        with executor.batch():
            jobs = [executor.submit(CommandFunction(list(cell.argv), verbose=True,
                                                    cwd=str(REPO_ROOT))) for cell in cells]
    except FailedJobError as error:  # sbatch refused: its own message, on one line
        message = " ".join(str(error).split())
        raise SweepError(f"the cluster refused the jobs: {message}") from error
    cell_jobs = [CellJob(cell, str(job.job_id), Path(job.paths.stdout), Path(job.paths.stderr),
                         Path(job.paths.result_pickle)) for cell, job in zip(cells, jobs,
                                                                            strict=True)]
    if executor.cluster == "slurm":
        for job in cell_jobs:
            rename_job(job.job_id, job.cell.name)
    return cell_jobs


def run_on_slurm(cells: Sequence[Cell], options: SlurmOptions, log_dir: Path, wait: bool,
                 say: Callable[[str], None] = print) -> list[Outcome]:
    """Submit the cells (those whose job from an earlier run is still queued or running are
    collected instead: no cell runs twice at once); with ``wait``, wait for every job and report
    done / failed, else report each job as pending or running."""
    options.check()
    if not cells:
        return []
    cluster = cluster_info()
    if not cluster.has_accounting:
        say(f"Slurm accounting is off on this cluster (AccountingStorageType="
            f"{cluster.accounting}): job states come from squeue")
    record = JobRecord(log_dir)
    earlier = record.jobs_of(cells)
    entries = queue_states(job.job_id for job in earlier) or {}
    queued = {}
    for job in earlier:
        entry = entries.get(job.job_id)
        if entry is not None and not entry.final and entry.name == job.cell.name:
            queued[id(job.cell)] = job
            say(f"already queued: {job.cell.name} is job {job.job_id} ({entry.state}); "
                "collecting it, not submitting it again")
    to_submit = [cell for cell in cells if id(cell) not in queued]
    submitted: list[CellJob] = []
    if to_submit:
        check_resources(options.sbatch_flags())
        submitted = submit_cells(to_submit, make_executor(log_dir / "submitit", options))
        record.add(submitted)
        for job in submitted:
            say(f"submitted {job.cell.name}: job {job.job_id}")
    by_cell = {id(job.cell): job for job in submitted} | queued
    jobs = [by_cell[id(cell)] for cell in cells]
    if wait:
        return wait_for_jobs(jobs, cluster.has_accounting, say)
    return current_outcomes(jobs, queue_states(job.job_id for job in jobs))
