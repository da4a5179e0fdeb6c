#!/usr/bin/env python
"""A real one-node Slurm cluster in a folder of its own: for the ``slurm`` tests, and by hand.

    python tools/slurm_cluster.py start [--dir D]     # prints the SLURM_CONF to export
    python tools/slurm_cluster.py status [--dir D]
    python tools/slurm_cluster.py stop [--dir D]

The folder (default ``$TMPDIR/ssl-transfer-slurm``) holds everything: ``slurm.conf`` (this node
with the CPUs and memory ``slurmd -C`` reports, two partitions ``debug`` (default) and ``long``,
no accounting, like most small clusters), a munge key and socket, state, spool, logs and the
pids of the three daemons (``munged``, ``slurmctld``, ``slurmd``), started in the foreground of
their own sessions on free ports. Nothing under ``/etc`` or ``/run`` is used or touched, so it
runs beside a real installation. Commands that talk to it (``sbatch``, ``squeue``, ``scontrol``,
``scancel``, submitit) need ``SLURM_CONF=<dir>/slurm.conf`` (``SlurmCluster.env``). ``stop``
cancels the cluster's jobs, then ends exactly the daemons it started (their recorded pid and
start time, never a process found by name). Needs root (slurmd starts jobs as their user) and
Debian's ``slurm-wlm`` and ``munge`` (``.ci/install-slurm``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

if not __package__:  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transfer.atomic import write_json_atomic  # noqa: E402
from transfer.errors import TransferError  # noqa: E402

DAEMONS = ("munged", "slurmctld", "slurmd")  # started in this order, stopped in reverse
PARTITIONS = ("debug", "long")  # the first is the default
DEFAULT_DIR = Path(tempfile.gettempdir()) / "ssl-transfer-slurm"
_CLIENTS = ("sinfo", "squeue", "sbatch", "scontrol", "scancel", "srun")
_ACTIVE_STATES = "PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING,REQUEUED,RESIZING"


class ClusterError(TransferError):
    """The test cluster cannot be set up, started or stopped; the message says why."""


def missing_requirements() -> str | None:
    """Why a cluster cannot start on this machine (for a test skip), or None if it can."""
    needed = [name for name in ("munged", "slurmctld", "slurmd", *_CLIENTS)
              if shutil.which(name) is None]
    if needed:
        return (f"{', '.join(needed)} not found: install Debian's slurm-wlm and munge "
                "(.ci/install-slurm)")
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs (run the slurm tests as root)"
    return None


def _free_port() -> int:
    """A TCP port nothing listens on now (the kernel's pick), so two clusters never collide."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/PID/stat), None if it is gone or a
    zombie: with the pid it names one process, even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the fields after "(comm)", from field 3 (state)
    return None if fields[0] in ("Z", "X") else fields[19]


def _node_line(name: str) -> str:
    """``NodeName=...`` for this machine as slurmd itself sees it (CPUs, sockets, cores,
    threads, RealMemory), so the node registers without being drained for a mismatch."""
    try:
        out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise ClusterError(f"slurmd -C could not describe this node: {error}") from error
    fields = out.splitlines()[0].split()
    if not fields or not fields[0].startswith("NodeName="):
        raise ClusterError(f"slurmd -C printed no node line: {out.strip()!r}")
    return " ".join([f"NodeName={name}", "NodeAddr=127.0.0.1", *fields[1:], "State=UNKNOWN"])


def _node_value(node_line: str, key: str) -> int:
    """An integer field (``CPUs``, ``RealMemory``) of a ``NodeName=...`` line."""
    fields = dict(item.split("=", 1) for item in node_line.split() if "=" in item)
    return int(fields[key])


@dataclass
class SlurmCluster:
    """One cluster's folder; ``start``/``stop`` may run in different processes (the pids are
    in ``daemons.json``)."""

    directory: Path
    _processes: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory).resolve()

    @property
    def conf(self) -> Path:
        return self.directory / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """The environment for commands that talk to this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    @property
    def _pid_record(self) -> Path:
        return self.directory / "daemons.json"

    def _log(self, daemon: str) -> Path:
        return self.directory / "log" / f"{daemon}.log"

    def write_config(self) -> Path:
        """Write ``slurm.conf`` and a new munge key, with empty state and spool folders (a new
        cluster: no jobs or node states of an earlier one come back)."""
        for sub in ("state", "spool"):
            shutil.rmtree(self.directory / sub, ignore_errors=True)
        for sub in ("state", "spool", "log", "munge"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        # munged wants every folder above its socket searchable by all, its key private
        for folder in (self.directory, self.directory / "munge"):
            folder.chmod(0o755)
        key = self.directory / "munge" / "munge.key"
        key.unlink(missing_ok=True)
        # munge takes any secret of 32 bytes or more (its docs suggest /dev/urandom)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(1024))
        host = socket.gethostname().split(".")[0]  # slurmctld must find itself in SlurmctldHost
        node = _node_line(host)
        d = self.directory
        lines = [
            "# a one-node test cluster written by tools/slurm_cluster.py",
            "ClusterName=ssl-transfer-test",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={d / 'munge' / 'munge.socket'}",
            f"StateSaveLocation={d / 'state'}",
            f"SlurmdSpoolDir={d / 'spool'}",
            f"SlurmctldPidFile={d / 'slurmctld.pid'}",
            f"SlurmdPidFile={d / 'slurmd.pid'}",
            f"SlurmctldLogFile={self._log('slurmctld')}",
            f"SlurmdLogFile={self._log('slurmd')}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU_Memory",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "MailProg=/bin/true",
            "ReturnToService=2",
            "KillWait=5",  # seconds from SIGTERM to SIGKILL when a job is cancelled or requeued
            # as on most clusters, a job without --mem gets its CPUs' share of the memory, not
            # the whole node (which would run array tasks one at a time)
            f"DefMemPerCPU={_node_value(node, 'RealMemory') // _node_value(node, 'CPUs')}",
            node,
            f"PartitionName={PARTITIONS[0]} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            *(f"PartitionName={name} Nodes=ALL MaxTime=INFINITE State=UP"
              for name in PARTITIONS[1:]),
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        return self.conf

    def _commands(self) -> dict[str, list[str]]:
        munge = self.directory / "munge"
        return {
            "munged": ["munged", "--foreground", f"--socket={munge / 'munge.socket'}",
                       f"--key-file={munge / 'munge.key'}", f"--pid-file={munge / 'munged.pid'}",
                       f"--seed-file={munge / 'munged.seed'}"],
            "slurmctld": ["slurmctld", "-D", "-f", str(self.conf)],
            "slurmd": ["slurmd", "-D", "-f", str(self.conf),
                       "-N", socket.gethostname().split(".")[0]],
        }

    def _recorded(self) -> dict[str, dict[str, object]]:
        try:
            return json.loads(self._pid_record.read_text())
        except (OSError, ValueError):
            return {}

    def running(self) -> dict[str, int]:
        """The daemons of this folder that are still alive (name -> pid)."""
        return {name: int(entry["pid"]) for name, entry in self._recorded().items()
                if _start_time(int(entry["pid"])) == entry["start"]}

    def start(self, timeout: float = 60.0) -> None:
        """Write the configuration, start the three daemons and wait until the node is idle; on
        a timeout, stop what was started and raise with the daemons' log tails."""
        if reason := missing_requirements():
            raise ClusterError(reason)
        if alive := self.running():
            raise ClusterError(f"a cluster already runs in {self.directory} (pids "
                               f"{', '.join(map(str, alive.values()))}); stop it first")
        self.write_config()
        record: dict[str, dict[str, object]] = {}
        try:
            for name, command in self._commands().items():
                with open(self._log(name).with_suffix(".out"), "ab") as out:
                    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                               stderr=subprocess.STDOUT, env=self.env,
                                               start_new_session=True)
                self._processes[name] = process
                record[name] = {"pid": process.pid, "start": _start_time(process.pid)}
                write_json_atomic(self._pid_record, record)
                if name == "munged":
                    self._wait_for(lambda: (self.directory / "munge" / "munge.socket").exists(),
                                   10.0, "munged to create its socket")
            self._wait_for(self._node_idle, timeout, "the node to be idle in sinfo")
        except BaseException:
            self.stop()
            raise

    def _node_idle(self) -> bool:
        return self.node_state() == "idle"

    def node_state(self) -> str | None:
        """The node's state as sinfo prints it (``idle``, ``mixed``, ...), None if unreachable."""
        try:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True,
                                 text=True, env=self.env, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.split()[0] if out.returncode == 0 and out.stdout.split() else None

    def _wait_for(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [name for name, process in self._processes.items()
                    if process.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = (f"{', '.join(dead)} exited" if dead
                       else f"timed out after {timeout:g}s waiting for {what}")
                raise ClusterError(f"the test cluster in {self.directory} did not start: {why}"
                                   f"\n{self.log_tails()}")
            time.sleep(0.2)

    def log_tails(self, lines: int = 8) -> str:
        """The last lines of every daemon's output and log file, to see why it failed."""
        parts = []
        for name in DAEMONS:
            for path in (self._log(name).with_suffix(".out"), self._log(name)):
                if path.is_file():
                    tail = path.read_text(errors="replace").splitlines()[-lines:]
                    parts.append(f"--- {path}\n" + "\n".join(tail))
        return "\n".join(parts)

    def cancel_jobs(self, timeout: float = 30.0) -> None:
        """Cancel every job of this cluster and wait until none runs (their processes end)."""
        if "slurmctld" not in self.running():
            return
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["scancel", "--full", "--user", "root"], env=self.env,
                           capture_output=True, timeout=20)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                out = subprocess.run(["squeue", "-h", "-t", _ACTIVE_STATES, "-o", "%i"],
                                     capture_output=True, text=True, env=self.env, timeout=10)
            except (OSError, subprocess.SubprocessError):
                return
            if out.returncode != 0 or not out.stdout.strip():
                return
            time.sleep(0.5)

    def stop(self, timeout: float = 20.0) -> list[str]:
        """Cancel the jobs, then SIGTERM (SIGKILL after ``timeout``) exactly the daemons this
        folder started; returns their names."""
        self.cancel_jobs()
        alive = self.running()
        stopped = []
        for name in reversed(DAEMONS):
            if name not in alive:
                continue
            pid = alive[name]
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not self._reap(name, pid, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._reap(name, pid, 5.0)
            stopped.append(name)
        self._processes.clear()
        self._pid_record.unlink(missing_ok=True)
        return stopped

    def _reap(self, name: str, pid: int, timeout: float) -> bool:
        """Wait for ``pid`` to end (reaping it when this process started it)."""
        process = self._processes.get(name)
        if process is not None:
            try:
                process.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while _start_time(pid) is not None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def status(self) -> str:
        """A few lines: which daemons run, and sinfo / squeue when the controller answers."""
        alive = self.running()
        lines = [f"{name}: " + (f"running (pid {alive[name]})" if name in alive else "stopped")
                 for name in DAEMONS]
        if "slurmctld" in alive:
            for command in (["sinfo"], ["squeue"]):
                out = subprocess.run(command, capture_output=True, text=True, env=self.env,
                                     timeout=10)
                lines.append((out.stdout or out.stderr).rstrip())
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                        help=f"the cluster's folder (default: {DEFAULT_DIR})")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for the node to be idle (start)")
    args = parser.parse_args(argv)
    cluster = SlurmCluster(args.dir)
    try:
        if args.action == "start":
            cluster.start(args.timeout)
            print(f"cluster running in {cluster.directory}; to use it:\n"
                  f"export SLURM_CONF={cluster.conf}\n"
                  f"(stop it with: python tools/slurm_cluster.py stop --dir {cluster.directory})")
        elif args.action == "stop":
            stopped = cluster.stop()
            print(f"stopped {', '.join(stopped)}" if stopped
                  else f"no daemon of {cluster.directory} was running")
        else:
            print(cluster.status())
    except (TransferError, OSError) as error:
        message = str(error).splitlines()
        print(f"error: {message[0] if message else error}", file=sys.stderr)
        if len(message) > 1:  # the daemons' log tails, below the one-line error
            print("\n".join(message[1:]), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
