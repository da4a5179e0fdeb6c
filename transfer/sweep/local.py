"""Run the cells on this machine, N at a time: each in its own process group under
``guard.py``, so that a failed, interrupted or killed sweep never leaves a cell running."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from models.registry import REPO_ROOT
from models.resolve import model_label
from transfer.console import progress as console_progress
from transfer.sweep import guard
from transfer.sweep.plan import Cell, SweepError
from transfer.sweep.summary import Outcome, finished, log_tail

GUARD = Path(guard.__file__)

def cell_log_path(cell: Cell, log_dir: Path) -> Path:
    return log_dir / cell.protocol / f"{model_label(cell.model)}__{cell.dataset}.log"


def _stop(process: subprocess.Popen) -> None:
    """Close the guard's stdin (it then kills the cell's process group) and wait for it."""
    with contextlib.suppress(OSError):
        process.stdin.close()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def cell_environment(jobs: int) -> dict[str, str]:
    """The environment of a local cell: with several cells at once, each gets cores / jobs
    threads for its BLAS, OpenMP and torch (unless the environment sets them already), so that
    ``jobs`` thread teams do not spin against each other on the same cores."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if jobs > 1:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        threads = str(max(1, (cores or 1) // jobs))
        for name in THREAD_VARIABLES:
            env.setdefault(name, threads)
    return env


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def run_cell(cell: Cell, log_path: Path, env: dict[str, str] | None = None,
             running: set[subprocess.Popen] | None = None) -> Outcome:
    """Run one cell in its own process group, output to ``log_path``; never raises for a failed
    run. ``running`` holds the cell's guard while it runs, for ``run_local`` to stop it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    running = set() if running is None else running
    try:
        with open(log_path, "w") as log:
            log.write(f"$ {shlex.join(cell.argv)}\n")
            log.flush()
            process = subprocess.Popen(
                [sys.executable, str(GUARD), *cell.argv], stdin=subprocess.PIPE, stdout=log,
                stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env or cell_environment(1),
                start_new_session=True)
            running.add(process)
            try:
                code = process.wait()
            finally:
                _stop(process)
                running.discard(process)
    except OSError as error:
        return Outcome(cell, "failed", time.perf_counter() - start,
                       f"could not start {cell.argv[0]}: {error}", log_path)
    seconds = time.perf_counter() - start
    if code != 0:
        return Outcome(cell, "failed", seconds, f"exit code {code}: {log_tail(log_path)}", log_path)
    status, detail = finished(cell)
    return Outcome(cell, status, seconds, detail, log_path)


def group_cells(cells: Iterable[Cell]) -> list[list[Cell]]:
    """Cells of one (model, dataset) in one group, run in order by one worker: they share the
    checkpoint and the feature cache entries, so no two workers ever write the same entry."""
    groups: dict[tuple[str, str], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.model, cell.dataset), []).append(cell)
    return list(groups.values())


def run_local(cells: Sequence[Cell], jobs: int, log_dir: Path, progress: bool = True,
              report: Callable[[str], None] | None = None) -> list[Outcome]:
    """Run cells ``jobs`` at a time on this machine; failures are reported, never raised."""
    if jobs < 1:
        raise SweepError(f"--jobs {jobs}: expected at least 1")
    if not cells:
        return []
    outcomes: dict[int, Outcome] = {}
    index = {id(cell): i for i, cell in enumerate(cells)}
    stop, lock = threading.Event(), threading.Lock()
    bar = console_progress(total=len(cells), desc="sweep", unit="cell", enabled=progress)
    say = report or bar.write
    env, running = cell_environment(jobs), set()

    def work(group: list[Cell]) -> None:
        for cell in group:
            if stop.is_set():
                return
            outcome = run_cell(cell, cell_log_path(cell, log_dir), env, running)
            with lock:
                outcomes[index[id(cell)]] = outcome
                bar.update(1)
                if outcome.status == "failed":
                    say(f"FAILED {cell.name} ({outcome.detail}); log: {outcome.log}")

    pool = ThreadPoolExecutor(max_workers=jobs)
    futures = [pool.submit(work, group) for group in group_cells(cells)]
    try:
        with terminate_as_interrupt():
            for future in futures:
                future.result()
    except BaseException:  # Ctrl-C, SIGTERM, SIGHUP, an error: stop the running cells' groups
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        while not all(future.done() for future in futures):  # a cell may start meanwhile
            for process in list(running):
                _stop(process)
            time.sleep(0.05)
        raise
    finally:
        pool.shutdown(wait=True)
        bar.close()
    return [outcomes.get(i, Outcome(cell, "not run")) for i, cell in enumerate(cells)]


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP (a killed sweep, a closed terminal) raise KeyboardInterrupt here, so
    the sweep stops its cells instead of leaving them running; the handlers are restored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signals = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {number: signal.signal(number, interrupt) for number in signals}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)

