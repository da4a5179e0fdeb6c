"""The benchmark grid: models x datasets x protocols, each cell one protocol-script run.

A cell is a command (``python linear.py -m byol -d dtd ...``) plus the result files that mean it
is done, so a rerun skips finished cells and a crash in one cell never touches another: every cell
runs in its own process. Two executors run the cells: ``run_local`` (N cells at a time on this
machine) and ``submit_cells`` (one submitit job per cell, e.g. a Slurm job array).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets.registry import CROSS_DOMAIN, DATASETS, MANY_SHOT, PAPER_DATASETS
from models.registry import MODELS, PAPER_MODELS, REPO_ROOT, ModelError, default_models_dir
from models.resolve import CUSTOM, FILE, model_label, resolve_model
from transfer.arguments import backbone_options
from transfer.errors import TransferError
from transfer.freshness import Present, rerun_reason

PROTOCOLS: tuple[str, ...] = ("linear", "few_shot", "finetune", "knn")
SCRIPTS = {"linear": "linear.py", "few_shot": "few_shot.py", "finetune": "finetune.py",
           "knn": "knn.py"}
#: Only the feature-based protocols keep a feature cache.
CACHED_PROTOCOLS = frozenset({"linear", "few_shot", "knn"})
PAPER_N_SUPPORT: tuple[int, ...] = (5, 20, 50)

DATASET_SETS: dict[str, list[str]] = {
    "all": list(PAPER_DATASETS),
    "many-shot": list(MANY_SHOT),
    "cross-domain": list(CROSS_DOMAIN),
    "few-shot": [n for n in PAPER_DATASETS if not DATASETS[n].multilabel],
}
MODEL_SETS: dict[str, list[str]] = {"all": list(MODELS), "paper": list(PAPER_MODELS)}
# The sweep sets these itself; an --extra that sets them too would make the skip check lie.
_OWNED_OPTIONS = {"-m", "--model", "-d", "--dataset", "--results-dir"}
_OWNED_BY_PROTOCOL = {"few_shot": {"--n-support"}}
_STATUSES = ("done", "failed", "skipped", "submitted", "not run")


class SweepError(TransferError, ValueError):
    """A sweep option names an unknown model, dataset or protocol, or cannot be honoured."""


def _expand(names: Iterable[str], shortcuts: dict[str, list[str]], kind: str,
            is_known: Callable[[str], bool], known_hint: str) -> list[str]:
    """Replace shortcuts by their members, keep order, drop repeats, reject unknown names."""
    out: list[str] = []
    for name in names:
        members = shortcuts.get(name, [name])
        for member in members:
            if not is_known(member):
                raise SweepError(f"unknown {kind} {member!r}; expected one of: {known_hint}")
            if member not in out:
                out.append(member)
    return out


def expand_models(names: Iterable[str], models_dir: str | os.PathLike | None = None) -> list[str]:
    """Model names with ``all`` / ``paper`` expanded; a custom name needs a checkpoint
    ``<models_dir>/<name>.pth``, a ``.pth`` path must exist, and a ``timm:`` name must be a timm
    architecture (its error, naming the closest ones, is raised as is)."""
    folder = Path(models_dir) if models_dir else default_models_dir()

    def known(name: str) -> bool:
        try:
            ref = resolve_model(name, folder)
        except ModelError as error:
            raise SweepError(str(error)) from None
        return ref.kind not in (CUSTOM, FILE) or ref.path.is_file()

    hint = (f"{', '.join(MODEL_SETS)} (shortcuts), {', '.join(MODELS)}, a common-format .pth "
            f"file, a name with a checkpoint <name>.pth in {folder}, or timm:<architecture>")
    return _expand(names, MODEL_SETS, "model", known, hint)


def expand_datasets(names: Iterable[str]) -> list[str]:
    """Dataset names with ``all``, ``many-shot``, ``cross-domain`` and ``few-shot`` expanded."""
    hint = f"{', '.join(DATASET_SETS)} (shortcuts), {', '.join(DATASETS)}"
    return _expand(names, DATASET_SETS, "dataset", lambda n: n in DATASETS, hint)


def expand_protocols(names: Iterable[str]) -> list[str]:
    """Protocol names with ``all`` expanded."""
    hint = f"all, {', '.join(PROTOCOLS)}"
    return _expand(names, {"all": list(PROTOCOLS)}, "protocol", lambda n: n in PROTOCOLS, hint)


def not_applicable(protocol: str, dataset: str) -> str | None:
    """Why ``protocol`` does not run on ``dataset`` (SPEC sections 2, 4-6), or None if it does."""
    spec = DATASETS[dataset]
    if protocol in ("linear", "finetune", "knn") and spec.few_shot_only:
        return "a cross-domain set is few-shot only"
    if protocol == "few_shot" and spec.multilabel:
        return "multi-label, so no few-shot classes"
    return None


def parse_extra(values: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``["few_shot=--iter-num 100", ...]`` -> ``{"few_shot": ("--iter-num", "100")}``."""
    extra: dict[str, list[str]] = {}
    for value in values:
        protocol, sep, args = value.partition("=")
        if not sep or protocol not in PROTOCOLS:
            raise SweepError(f"--extra {value!r}: expected PROTOCOL=ARGS with PROTOCOL one of "
                             f"{', '.join(PROTOCOLS)}, e.g. finetune='--steps 500'")
        tokens = shlex.split(args)
        owned = _OWNED_OPTIONS | _OWNED_BY_PROTOCOL.get(protocol, set())
        for token in tokens:
            if token.split("=", 1)[0] in owned:
                raise SweepError(f"--extra {protocol}: {token.split('=', 1)[0]} is set by the "
                                 "sweep itself (use --models/--datasets/--results-dir/--n-support)")
        extra.setdefault(protocol, []).extend(tokens)
    return {protocol: tuple(tokens) for protocol, tokens in extra.items()}


@dataclass(frozen=True)
class SweepOptions:
    """What every cell's command shares; ``None`` leaves a script's own default."""

    results_dir: Path
    models_dir: str | None = None
    data_root: str | None = None
    cache_dir: str | None = None
    device: str | None = None
    image_size: int | None = None
    workers: int | None = None
    n_support: tuple[int, ...] = PAPER_N_SUPPORT
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)
    python: str = sys.executable


@dataclass(frozen=True)
class Cell:
    """One protocol run: its command and the result files it must leave behind."""

    protocol: str
    model: str
    dataset: str
    argv: tuple[str, ...]
    outputs: tuple[Path, ...]
    reason: str = ""  # why a cell with results runs again (their provenance is not current)
    pending: bool = True  # some result is missing or not current

    @property
    def name(self) -> str:
        return f"{self.protocol}/{model_label(self.model)}__{self.dataset}"

    def missing(self) -> list[Path]:
        return [path for path in self.outputs if not path.is_file()]


def _script(protocol: str) -> Any:
    """The protocol's script as a module (loaded once), to parse a cell's arguments and name
    its result files exactly as the script will."""
    if protocol not in _SCRIPT_MODULES:
        path = REPO_ROOT / SCRIPTS[protocol]
        spec = importlib.util.spec_from_file_location(f"_sweep_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _SCRIPT_MODULES[protocol] = module
    return _SCRIPT_MODULES[protocol]


_SCRIPT_MODULES: dict[str, Any] = {}


def _script_arguments(protocol: str, model: str, dataset: str, options: SweepOptions,
                      shots: Sequence[int] | None = None) -> list[str]:
    """A cell's command-line arguments after the script (few-shot: ``shots``, default all)."""
    argv = ["--model", model, "--dataset", dataset, "--results-dir", str(options.results_dir)]
    for flag, value in (("--models-dir", options.models_dir), ("--data-root", options.data_root),
                        ("--device", options.device), ("--image-size", options.image_size),
                        ("--workers", options.workers)):
        if value is not None:
            argv += [flag, str(value)]
    if options.cache_dir is not None and protocol in CACHED_PROTOCOLS:
        argv += ["--cache-dir", str(options.cache_dir)]
    if protocol == "few_shot":
        argv += ["--n-support", *map(str, shots or options.n_support)]
    return argv + list(options.extra.get(protocol, ()))


def _cell_arguments(protocol: str, model: str, dataset: str,
                    options: SweepOptions) -> argparse.Namespace:
    """The arguments the script parses from a cell's command (all few-shot shot counts)."""
    try:
        return _script(protocol).parse_args(_script_arguments(protocol, model, dataset, options))
    except SystemExit:
        raise SweepError(f"{SCRIPTS[protocol]} rejects the arguments of its cells (its message "
                         f"is above); check --extra {protocol}=...") from None


def expected_outputs(protocol: str, model: str, dataset: str,
                     options: SweepOptions) -> tuple[Path, ...]:
    """The result files a finished cell has written: the script's own ``result_files`` of the
    cell's arguments, so options that change the numbers (named in the file) are followed."""
    args = _cell_arguments(protocol, model, dataset, options)
    # the name the script files results under: a timm model's carries its options
    return tuple(_script(protocol).result_files(args, model_label(model, backbone_options(args))))


def build_cell(protocol: str, model: str, dataset: str, options: SweepOptions,
               force: bool = False, present: Present | None = None) -> Cell:
    """The command of one cell. Its existing results are checked against what would run now
    (``transfer.freshness``; a ``Present`` from the options unless given): a result whose
    provenance differs is redone, and the cell's ``reason`` says why. A few-shot cell asks only
    for its missing or outdated shot counts."""
    outputs = expected_outputs(protocol, model, dataset, options)
    args = _cell_arguments(protocol, model, dataset, options)
    present = present or Present(options.models_dir, options.data_root)
    redo: list[bool] = []  # per output: missing, outdated or forced
    reason = ""  # the first outdated result's
    for path in outputs:
        if force or not path.is_file():
            redo.append(True)
            continue
        why = rerun_reason(path, protocol, model, dataset, vars(args), present,
                           backbone_options(args))
        redo.append(why is not None)
        reason = reason or why or ""
    shots = None
    if protocol == "few_shot":
        shots = [k for k, again in zip(options.n_support, redo, strict=True) if again]
    argv = [options.python, str(REPO_ROOT / SCRIPTS[protocol]),
            *_script_arguments(protocol, model, dataset, options, shots)]
    return Cell(protocol, model, dataset, tuple(argv), outputs, reason, pending=any(redo))


@dataclass
class Plan:
    """The grid after expansion: cells to run, cells already done, pairs that do not apply."""

    to_run: list[Cell]
    done: list[Cell]
    not_applicable: list[tuple[str, str, str]]  # (protocol, dataset, reason)

    @property
    def cells(self) -> list[Cell]:
        return self.to_run + self.done


def plan_grid(models: Sequence[str], datasets: Sequence[str], protocols: Sequence[str],
              options: SweepOptions, force: bool = False) -> Plan:
    """Every applicable (model, dataset, protocol) cell, ordered model, dataset, protocol."""
    plan = Plan([], [], [])
    present = Present(options.models_dir, options.data_root)  # shared: each hash computed once
    for protocol in protocols:
        for dataset in datasets:
            if (reason := not_applicable(protocol, dataset)) is not None:
                plan.not_applicable.append((protocol, dataset, reason))
    for model in models:
        for dataset in datasets:
            for protocol in protocols:
                if not_applicable(protocol, dataset) is not None:
                    continue
                cell = build_cell(protocol, model, dataset, options, force, present)
                (plan.to_run if cell.pending else plan.done).append(cell)
    return plan


@dataclass
class Outcome:
    """What happened to one cell: a status of ``_STATUSES``, seconds, and where to look."""

    cell: Cell
    status: str
    seconds: float = 0.0
    detail: str = ""
    log: Path | None = None
    job_id: str | None = None


def cell_log_path(cell: Cell, log_dir: Path) -> Path:
    return log_dir / cell.protocol / f"{model_label(cell.model)}__{cell.dataset}.log"


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").replace("\r", "\n").splitlines()
    except OSError:
        return ""
    errors = [line for line in text if (line.startswith("error") or ": error:" in line)
              and not line.startswith("submitit.")]  # submitit repeats the message in its trace
    return "\n".join((errors or [line for line in text if line.strip()])[-lines:])


def _finished(cell: Cell, status_if_ok: str = "done") -> tuple[str, str]:
    """(status, detail) of a cell whose process ended well: done only if its files exist."""
    missing = cell.missing()
    if missing:
        return "failed", f"exited 0 but wrote no {missing[0]}"
    return status_if_ok, ""


# The parent of every local cell: it runs the cell's command in its own process group (the
# guard leads a new session) and kills that whole group (the script, its DataLoader workers,
# torchrun's ranks) once its stdin closes: when the sweep ends a cell early, is interrupted or
# dies, even by SIGKILL, which no handler of the sweep's could catch.
_GUARD = """
import os, signal, subprocess, sys, threading
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL)
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the guard outlives the TERM it sends its group
def watch():
    while os.read(0, 4096):
        pass
    if child.poll() is None:
        os.killpg(0, signal.SIGTERM)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(0, signal.SIGKILL)
threading.Thread(target=watch, daemon=True).start()
code = child.wait()
os._exit(128 - code if code < 0 else code)
"""


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
                [sys.executable, "-c", _GUARD, *cell.argv], stdin=subprocess.PIPE, stdout=log,
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
        return Outcome(cell, "failed", seconds, f"exit code {code}: {_tail(log_path)}", log_path)
    status, detail = _finished(cell)
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
    from tqdm import tqdm

    if jobs < 1:
        raise SweepError(f"--jobs {jobs}: expected at least 1")
    if not cells:
        return []
    outcomes: dict[int, Outcome] = {}
    index = {id(cell): i for i, cell in enumerate(cells)}
    stop, lock = threading.Event(), threading.Lock()
    bar = tqdm(total=len(cells), desc="sweep", unit="cell", disable=not progress)
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
        with _terminate_as_interrupt():
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
def _terminate_as_interrupt() -> Iterator[None]:
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
                         "use --executor local)") from None
    executor.update_parameters(name="ssl-transfer", **options.executor_parameters())
    return executor


def _job_failure(error: Exception, job: Any) -> str:
    """The exit code in submitit's trace and the error lines of the job's stderr."""
    text = str(error)
    code = re.search(r"returned non-zero exit status (-?\d+)", text)
    tail = _tail(Path(str(job.paths.stderr)))
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
        status, detail = _finished(cell)
        outcomes.append(Outcome(cell, status, time.perf_counter() - start, detail, log,
                                str(job.job_id)))
    return outcomes


def summary_table(outcomes: Sequence[Outcome]) -> str:
    """Counts of done / failed / skipped (/ submitted) per protocol, then the failed cells."""
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
