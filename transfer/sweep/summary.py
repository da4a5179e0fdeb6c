"""What happened to each cell, and the table a sweep ends with."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from transfer.sweep.plan import PROTOCOLS, Cell

# pending / running: Slurm jobs that were not waited for (sweep.py without --wait)
_STATUSES = ("done", "failed", "skipped", "pending", "running", "not run")
# lines of a Slurm job's log that repeat or wrap the script's own error: submitit's traceback,
# srun's "task 0: Exited with exit code 1", slurmstepd's notices
_WRAPPER_PREFIXES = ("submitit.", "srun:", "slurmstepd")


@dataclass
class Outcome:
    """What happened to one cell: a status of ``_STATUSES``, seconds, and where to look."""

    cell: Cell
    status: str
    seconds: float = 0.0
    detail: str = ""
    log: Path | None = None
    job_id: str | None = None


def log_tail(path: Path, lines: int = 5) -> str:
    """The error lines at the end of a cell's log (else its last lines), for a failure's detail."""
    try:
        text = path.read_text(errors="replace").replace("\r", "\n").splitlines()
    except OSError:
        return ""
    errors = [line for line in text if (line.startswith("error") or ": error:" in line)
              and not line.startswith(_WRAPPER_PREFIXES)]
    chosen = errors or [line for line in text if line.strip()]
    return "\n".join(list(dict.fromkeys(chosen))[-lines:])  # submitit repeats the error once


def finished(cell: Cell, status_if_ok: str = "done") -> tuple[str, str]:
    """(status, detail) of a cell whose process ended well: done only if its files exist."""
    missing = cell.missing()
    if missing:
        return "failed", f"exited 0 but wrote no {missing[0]}"
    return status_if_ok, ""


def summary_table(outcomes: Sequence[Outcome]) -> str:
    """Counts of done / failed / skipped (/ pending / running) per protocol, then the failed
    cells with their logs."""
    counts = Counter((o.cell.protocol, o.status) for o in outcomes)
    protocols = [p for p in PROTOCOLS if any(o.cell.protocol == p for o in outcomes)]
    statuses = [s for s in _STATUSES if s in ("done", "failed", "skipped")
                or any(o.status == s for o in outcomes)]
    width = max([len("protocol"), len("total"), *map(len, protocols)])
    header = f"{'protocol':<{width}}  " + "  ".join(f"{s:>9}" for s in statuses)
    lines = [header, "-" * len(header)]
    for protocol in [*protocols, "total"]:
        row = [sum(counts[(p, s)] for p in protocols) if protocol == "total"
               else counts[(protocol, s)] for s in statuses]
        lines.append(f"{protocol:<{width}}  " + "  ".join(f"{n:>9}" for n in row))
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        lines.append("")
        lines.append("failed cells:")
        for outcome in failed:
            where = f" (log: {outcome.log})" if outcome.log else ""
            lines.append(f"  {outcome.cell.name}: {outcome.detail}{where}")
    return "\n".join(lines)

