"""One JSON file per run under ``results/<protocol>/``: runs resume by skipping existing files and
``report.py`` tabulates them.

Every record has ``protocol``, ``model``, ``dataset`` and, for scored runs, ``metric`` and
``score`` (percent); protocol-specific fields sit beside them, and ``versions`` / ``created`` say
what produced it.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

from models.registry import REPO_ROOT
from transfer.atomic import write_json_atomic


def default_results_dir() -> Path:
    """``$SSL_TRANSFER_RESULTS`` if set, else ``results/`` in this repository."""
    env = os.environ.get("SSL_TRANSFER_RESULTS")
    return Path(env) if env else REPO_ROOT / "results"


def result_path(
    protocol: str, model: str, dataset: str, suffix: str = "", results_dir: str | Path | None = None
) -> Path:
    """``results/<protocol>/<model>__<dataset>[__<suffix>].json``."""
    name = f"{model}__{dataset}" + (f"__{suffix}" if suffix else "")
    return Path(results_dir or default_results_dir()) / protocol / f"{name}.json"


def software_versions() -> dict[str, str]:
    import numpy
    import sklearn
    import torch
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
    }


def write_result(path: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` with versions and a timestamp, atomically."""
    payload = dict(record)
    payload.setdefault("versions", software_versions())
    payload.setdefault("created", datetime.datetime.now(datetime.timezone.utc).isoformat())
    return write_json_atomic(path, payload)


def read_result(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
