""".ci/install-detectron2, the CI step that builds detectron2 from the vendored snapshot: the
branches that install nothing (the build itself takes 10-20 minutes and is CI's own run)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.detectron2_scripts import REPO
from tests.fixtures.detectron2_shim import import_detectron2

SCRIPT = REPO / ".ci" / "install-detectron2"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run_script(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SSL_TRANSFER_CI_CACHE": str(tmp_path / "cache"),
                               **env})  # fmt: skip


def test_without_detectron2_or_snapshot_it_says_so_in_one_line(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"  # a detectron2 that fails to import, ahead of any real one
    shadow.mkdir()
    (shadow / "detectron2.py").write_text("raise ImportError('not here')\n")
    missing = tmp_path / "vendor" / "detectron2-02b5c4e.tar.gz"
    proc = run_script(tmp_path, PYTHONPATH=str(shadow), DETECTRON2_SNAPSHOT=str(missing))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (f"detectron2 not installed: no snapshot at {missing} (set"
                           " DETECTRON2_SNAPSHOT); the detectron2 tests will skip\n")  # fmt: skip
    assert not (tmp_path / "cache").exists()  # nothing unpacked, built or installed


FAKE_PIP = """#!/usr/bin/env bash
# records its arguments; `pip wheel ... -w DIR SRC` leaves a wheel named as detectron2's in DIR
echo "pip $*" >> "$PIP_LOG"
if [ "$1" = wheel ]; then
    while [ "$#" -gt 0 ]; do [ "$1" = -w ] && out="$2"; shift; done
    touch "$out/detectron2-0.6-cp311-cp311-linux_x86_64.whl"
fi
"""


def test_first_run_unpacks_and_builds_later_runs_reuse_the_wheel(tmp_path: Path) -> None:
    """The build steps with a stand-in pip (the real build takes 10-20 minutes): unpack the
    snapshot into the cache, build a wheel there, install it and the pinned dependencies; a
    second run installs the cached wheel without building."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "detectron2.py").write_text("raise ImportError('not here')\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pip").write_text(FAKE_PIP)
    (bin_dir / "pip").chmod(0o755)
    source = tmp_path / "src" / "detectron2"
    source.mkdir(parents=True)
    (source / "setup.py").write_text("# stand-in\n")
    snapshot = tmp_path / "detectron2-02b5c4e.tar.gz"
    subprocess.run(["tar", "-czf", str(snapshot), "-C", str(tmp_path / "src"), "detectron2"],
                   check=True)  # fmt: skip
    log = tmp_path / "pip.log"
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PIP_LOG": str(log),
           "PYTHONPATH": str(shadow), "DETECTRON2_SNAPSHOT": str(snapshot)}  # fmt: skip
    cache = tmp_path / "cache"
    wheel = cache / "wheels" / "detectron2-0.6-cp311-cp311-linux_x86_64.whl"

    first = run_script(tmp_path, **env)
    assert first.returncode != 0  # the stand-in installs nothing, so the final import fails
    assert (cache / "detectron2-02b5c4e" / "setup.py").read_text() == "# stand-in\n"
    calls = log.read_text().splitlines()
    assert calls[0] == "pip install -r requirements-detection.txt"
    assert calls[1].startswith("pip wheel --no-build-isolation --no-deps -w ")
    assert calls[1].endswith(str(cache / "detectron2-02b5c4e"))
    assert calls[2:] == [f"pip install --no-deps {wheel}"]
    # nothing half-made left beside them (the partial unpack, the build folder)
    assert sorted(p.name for p in cache.iterdir()) == ["detectron2-02b5c4e", "wheels"]

    log.unlink()
    snapshot.unlink()  # a cached wheel needs no snapshot
    run_script(tmp_path, **env)
    assert log.read_text().splitlines() == ["pip install -r requirements-detection.txt",
                                            f"pip install --no-deps {wheel}"]  # fmt: skip


@pytest.mark.detectron2
def test_with_detectron2_importable_it_does_nothing(tmp_path: Path) -> None:
    detectron2 = import_detectron2()
    if detectron2 is None:
        pytest.skip("detectron2 is not installed")
    proc = run_script(tmp_path, DETECTRON2_SNAPSHOT=str(tmp_path / "none.tar.gz"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"detectron2 {detectron2.__version__} is importable\n"
    assert not (tmp_path / "cache").exists()
