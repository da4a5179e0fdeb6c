"""tools/slurm_cluster.py: the configuration it writes, that it stops exactly the daemons it
started, a clear error when one dies; and (marked ``slurm``) a real cluster that runs a job."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tools import slurm_cluster
from tools.slurm_cluster import ClusterError, SlurmCluster, _start_time
from transfer.atomic import write_json_atomic

REPO = Path(__file__).resolve().parents[2]


def _conf_values(conf: Path) -> dict[str, str]:
    """key=value pairs of slurm.conf, node line fields included (later keys win)."""
    values = {}
    for line in conf.read_text().splitlines():
        if line.startswith("#"):
            continue
        for item in line.split():
            key, _, value = item.partition("=")
            values[key] = value
    return values


def _mem_total_mb() -> int:
    line = next(line for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:"))
    return int(line.split()[1]) // 1024


@pytest.mark.skipif(shutil.which("slurmd") is None, reason="slurmd not installed (slurm-wlm)")
def test_config_describes_this_node_with_private_state(tmp_path):
    cluster = SlurmCluster(tmp_path / "c")
    conf = cluster.write_config()
    values = _conf_values(conf)
    assert int(values["CPUs"]) == os.cpu_count()
    assert abs(int(values["RealMemory"]) - _mem_total_mb()) <= 0.02 * _mem_total_mb()
    assert int(values["DefMemPerCPU"]) == int(values["RealMemory"]) // int(values["CPUs"])
    assert values["ProctrackType"] == "proctrack/linuxproc"
    assert values["TaskPlugin"] == "task/none"
    assert values["SelectType"] == "select/cons_tres"
    assert values["AccountingStorageType"] == "accounting_storage/none"
    assert values["SlurmctldPort"] != values["SlurmdPort"]
    for key in ("StateSaveLocation", "SlurmdSpoolDir", "SlurmctldLogFile", "SlurmdPidFile"):
        assert Path(values[key]).is_relative_to(cluster.directory), key
    assert values["AuthInfo"] == f"socket={cluster.directory / 'munge' / 'munge.socket'}"
    key = cluster.directory / "munge" / "munge.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.stat().st_size == 1024
    assert stat.S_IMODE(cluster.directory.stat().st_mode) == 0o755
    assert cluster.env["SLURM_CONF"] == str(conf)


def test_missing_daemons_or_root_are_named(monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which",
                        lambda name: None if name in ("slurmctld", "munged") else real_which(name))
    reason = slurm_cluster.missing_requirements()
    assert reason.startswith("munged, slurmctld not found")
    assert ".ci/install-slurm" in reason
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "must run as root" in slurm_cluster.missing_requirements()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert slurm_cluster.missing_requirements() is None


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def test_stop_ends_exactly_the_recorded_daemons(tmp_path):
    recorded, reused, stranger = _sleeper(), _sleeper(), _sleeper()
    try:
        for process in (recorded, reused, stranger):
            while _start_time(process.pid) is None:
                time.sleep(0.01)
        # "slurmctld" names a pid whose start time differs: the pid was reused, not ours
        write_json_atomic(tmp_path / "daemons.json", {
            "slurmd": {"pid": recorded.pid, "start": _start_time(recorded.pid)},
            "slurmctld": {"pid": reused.pid, "start": "1"},
        })
        cluster = SlurmCluster(tmp_path)
        assert cluster.running() == {"slurmd": recorded.pid}
        assert cluster.stop(timeout=10) == ["slurmd"]
        assert recorded.wait(timeout=10) == -15  # SIGTERM
        assert reused.poll() is None and stranger.poll() is None
        assert not (tmp_path / "daemons.json").exists()
        assert cluster.stop() == []  # nothing left: a second stop is a no-op
    finally:
        for process in (recorded, reused, stranger):
            process.kill()
            process.wait()


def test_a_daemon_that_dies_at_start_is_an_error_with_its_log(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(slurm_cluster, "missing_requirements", lambda: None)
    monkeypatch.setattr(slurm_cluster, "_node_line", lambda name: f"NodeName={name} CPUs=2 "
                                                                  "RealMemory=2000 State=UNKNOWN")
    monkeypatch.setattr(SlurmCluster, "_commands", lambda self: {
        "munged": ["sh", "-c", "echo 'munged: Error: Keyfile is insecure'; exit 1"]})
    with pytest.raises(ClusterError) as caught:
        SlurmCluster(tmp_path).start(timeout=20)
    message = str(caught.value)
    assert message.splitlines()[0] == f"the test cluster in {tmp_path} did not start: munged exited"
    assert "munged: Error: Keyfile is insecure" in message
    assert not (tmp_path / "daemons.json").exists()

    assert slurm_cluster.main(["start", "--dir", str(tmp_path), "--timeout", "20"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the test cluster in {tmp_path} did not start: munged exited\n")


@pytest.mark.slurm
def test_the_cluster_runs_a_job_on_this_node(slurm_cluster, tmp_path):
    env = slurm_cluster.env
    state, cpus = subprocess.run(["sinfo", "-h", "-N", "-p", "debug", "-o", "%T %c"], env=env,
                                 capture_output=True, text=True, check=True).stdout.split()
    assert cpus == str(os.cpu_count()) and state in ("idle", "mixed", "allocated")
    out = tmp_path / "job.out"
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--wait", "-o", str(out), "--wrap",
         "echo job $SLURM_JOB_ID on $SLURM_JOB_PARTITION with $SLURM_CPUS_ON_NODE cpus"],
        env=env, capture_output=True, text=True, timeout=120)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert out.read_text().split()[:4] == ["job", job_id, "on", "debug"]
    show = subprocess.run(["scontrol", "show", "job", job_id], env=env, capture_output=True,
                          text=True, check=True).stdout
    assert "JobState=COMPLETED" in show


@pytest.mark.slurm
def test_start_and_stop_by_hand_leave_other_clusters_alone(slurm_cluster):
    directory = Path(tempfile.mkdtemp(prefix="ssl-transfer-slurm-cli-"))
    script = [sys.executable, str(REPO / "tools" / "slurm_cluster.py")]
    try:
        started = subprocess.run([*script, "start", "--dir", str(directory)],
                                 capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stderr
        assert f"export SLURM_CONF={directory / 'slurm.conf'}" in started.stdout
        pids = SlurmCluster(directory).running()
        assert sorted(pids) == ["munged", "slurmctld", "slurmd"]
        status = subprocess.run([*script, "status", "--dir", str(directory)],
                                capture_output=True, text=True, timeout=60).stdout
        assert f"slurmd: running (pid {pids['slurmd']})" in status and " idle " in status
        stopped = subprocess.run([*script, "stop", "--dir", str(directory)],
                                 capture_output=True, text=True, timeout=120)
        assert stopped.stdout.strip() == "stopped slurmd, slurmctld, munged"
        assert all(_start_time(pid) is None for pid in pids.values())
        # the session's cluster still answers
        assert slurm_cluster.node_state() in ("idle", "mixed", "allocated")
        assert sorted(slurm_cluster.running()) == ["munged", "slurmctld", "slurmd"]
    finally:
        SlurmCluster(directory).stop()
        shutil.rmtree(directory, ignore_errors=True)
