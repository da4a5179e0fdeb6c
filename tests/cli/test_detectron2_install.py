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


@pytest.mark.detectron2
def test_with_detectron2_importable_it_does_nothing(tmp_path: Path) -> None:
    detectron2 = import_detectron2()
    if detectron2 is None:
        pytest.skip("detectron2 is not installed")
    proc = run_script(tmp_path, DETECTRON2_SNAPSHOT=str(tmp_path / "none.tar.gz"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"detectron2 {detectron2.__version__} is importable\n"
    assert not (tmp_path / "cache").exists()
