"""Ask the Slurm controller directly: ``scontrol`` for its configuration and job names,
``sbatch --test-only`` to check the resources before anything is submitted, ``squeue`` for job
states. Not submitit's watcher: it asks ``sacct``, which fails on the many small clusters that
run without accounting, and then logged a warning on every poll and never saw a job that ended
without a result file (a cancelled pending job kept ``sweep.py --wait`` waiting forever)."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from transfer.sweep.plan import SweepError

log = logging.getLogger(__name__)

#: States a job never leaves; anything else squeue lists is still the cluster's.
FINAL_STATES = frozenset({"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED",
                          "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "SPECIAL_EXIT",
                          "TIMEOUT"})
#: Waiting to (re)start: a requeued job (``scontrol requeue``, preemption) is pending again.
PENDING_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
                            "RESV_DEL_HOLD"})
NO_ACCOUNTING = "accounting_storage/none"


def _run(args: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as error:
        raise SweepError(f"--executor slurm: no {args[0]} on this machine (run sweep.py on a "
                         "Slurm login node, or use --executor local)") from error
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SweepError(f"--executor slurm: {args[0]} failed: {error}") from error


def _errors(text: str) -> str:
    """The ``error:`` lines of a Slurm command's output, without the command's prefix."""
    lines = [line.split("error:", 1)[1].strip() for line in text.splitlines() if "error:" in line]
    return "; ".join(lines) or next((line for line in text.splitlines() if line.strip()), "")


@dataclass(frozen=True)
class ClusterInfo:
    """What the sweep needs to know of the cluster, from ``scontrol show config``."""

    name: str
    accounting: str  # AccountingStorageType

    @property
    def has_accounting(self) -> bool:
        return self.accounting not in ("", NO_ACCOUNTING)


def cluster_info() -> ClusterInfo:
    """The controller's configuration; a SweepError when no controller answers."""
    conf = os.environ.get("SLURM_CONF")
    if conf and not Path(conf).is_file():  # scontrol would retry for a minute first
        raise SweepError(f"--executor slurm: SLURM_CONF={conf} is not a file; point it at the "
                         "cluster's slurm.conf, or unset it")
    out = _run(["scontrol", "show", "config"])
    if out.returncode != 0:
        raise SweepError(f"--executor slurm: no Slurm controller answers ({_errors(out.stderr)});"
                         " run sweep.py on a login node of the cluster (SLURM_CONF names its "
                         "slurm.conf), or use --executor local")
    config = {}
    for line in out.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip()] = value.strip()
    return ClusterInfo(config.get("ClusterName", ""), config.get("AccountingStorageType", ""))


def check_resources(flags: list[str]) -> None:
    """``sbatch --test-only`` with the jobs' resources: a partition, account, QOS, GPU or CPU
    count the cluster cannot give is an error now, not a job pending forever or a traceback."""
    out = _run(["sbatch", "--test-only", *flags, "--wrap", "true"])
    if out.returncode != 0:
        raise SweepError(f"the cluster refuses these jobs: {_errors(out.stderr)} (sbatch "
                         f"--test-only {shlex.join(flags)}); change the --slurm-* options")


@dataclass(frozen=True)
class QueueEntry:
    """One job (or array task) as squeue lists it."""

    state: str
    reason: str
    name: str

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def pending(self) -> bool:
        return self.state in PENDING_STATES


def queue_states(job_ids: Iterable[str]) -> dict[str, QueueEntry] | None:
    """The entries squeue still lists for these jobs (``12_3`` for an array task; a finished job
    stays listed for the cluster's MinJobAge, 5 minutes by default), None if squeue failed."""
    arrays = sorted({job_id.split("_")[0] for job_id in job_ids})
    if not arrays:
        return {}
    out = _run(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%r|%j",
                f"--jobs={','.join(arrays)}"])
    if out.returncode != 0:
        if "Invalid job id" in out.stderr:  # every job has left the queue
            return {}
        log.warning("squeue failed (%s); trying again", _errors(out.stderr))
        return None
    entries = {}
    for line in out.stdout.splitlines():
        fields = line.split("|", 3)
        if len(fields) == 4:
            entries[fields[0].strip()] = QueueEntry(fields[1], fields[2], fields[3])
    return entries


def accounting_states(job_ids: Iterable[str]) -> dict[str, str]:
    """Final states from sacct, for jobs squeue no longer lists (only where accounting is on)."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    out = _run(["sacct", "--noheader", "--parsable2", "--allocations",
                "--format=JobID,State", f"--jobs={','.join(ids)}"])
    states = {}
    if out.returncode == 0:
        for line in out.stdout.splitlines():
            job_id, _, state = line.partition("|")
            if state:
                states[job_id] = state.split()[0]  # "CANCELLED by 0" -> CANCELLED
    return states


def rename_job(job_id: str, name: str) -> bool:
    """Give a job (an array task: its own) a name; squeue then shows which cell it runs."""
    out = _run(["scontrol", "update", f"JobId={job_id}", f"JobName={name}"])
    if out.returncode != 0:
        log.debug("could not name job %s %r: %s", job_id, name, _errors(out.stderr))
    return out.returncode == 0
