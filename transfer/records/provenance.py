"""What produced a record: checkpoint content, split contents, transforms, protocol options,
code version, libraries and device (a record's ``provenance`` block)."""

from __future__ import annotations

import platform
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.registry import REPO_ROOT
from transfer.runtime.device import device_name


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


# Arguments that say where files are or how fast work goes, not what is computed: left out of a
# record's protocol options so that moving a cache or changing worker counts is no new protocol.
NOT_PROTOCOL_OPTIONS = frozenset(
    {
        "data_root",
        "models_dir",
        "cache_dir",
        "results_dir",
        "workers",
        "progress",
        "no_progress",
        "checkpoint_every",
        "device",
        "gpus",
    }
)


def protocol_options(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments that define what a run computes (``NOT_PROTOCOL_OPTIONS`` left out),
    sorted, with values made JSON-friendly."""
    return {
        key: json_plain(value)
        for key, value in sorted(arguments.items())
        if key not in NOT_PROTOCOL_OPTIONS
    }


def json_plain(value: Any) -> Any:
    """``value`` as it reads back from a JSON record: tuples as lists, keys and other objects
    (a Path, say) as strings."""
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return [json_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): json_plain(item) for key, item in value.items()}
    return str(value)  # a Path, say


def project_version(root: str | Path = REPO_ROOT) -> str | None:
    """``version`` of pyproject.toml's ``[project]`` table, None if there is no such file."""
    path = Path(root) / "pyproject.toml"
    if not path.is_file():
        return None
    try:
        import tomllib
    except ImportError:  # Python 3.10: the first version line, which is [project]'s
        match = re.search(r'^version\s*=\s*"([^"]+)"', path.read_text(), re.MULTILINE)
        return match.group(1) if match else None
    return tomllib.loads(path.read_text()).get("project", {}).get("version")


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):  # no git, or it hung
        return None
    return done.stdout if done.returncode == 0 else None


def code_version(root: str | Path = REPO_ROOT) -> dict[str, Any]:
    """``{"version", "commit", "dirty"}`` of the code at ``root``.

    ``commit`` is None (and ``dirty`` None) when ``root`` is not a git checkout or git is missing.
    ``dirty`` is True when tracked files differ from the commit or untracked files that git does
    not ignore exist (new code counts; results/ and caches are ignored).
    """
    root = Path(root)
    commit = _git(root, "rev-parse", "--verify", "HEAD")
    status = _git(root, "status", "--porcelain") if commit is not None else None
    return {
        "version": project_version(root),
        "commit": commit.strip() if commit else None,
        "dirty": None if status is None else bool(status.strip()),
    }


def provenance(
    checkpoint: str | None,
    splits: Mapping[str, Any],
    transforms: Mapping[str, str],
    options: Mapping[str, Any],
    device: str | None,
    versions: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What produced a record, for ``record["provenance"]``.

    - ``checkpoint``: the backbone's identity (``Backbone.identity``: the sha256 of its weights
      file; for ``random``, its seed and torchvision version).
    - ``splits``: split name -> content identity, for every split the run read (``Split`` objects
      or identity strings; ``Split.identity`` hashes keys and targets).
    - ``transform``: role -> transform id (e.g. ``{"eval": "eval-224-norm"}``).
    - ``options``: every protocol option (:func:`protocol_options` of the arguments).
    - ``code``: :func:`code_version`; ``versions``: library versions; ``device``: its name.
    """
    return {
        "checkpoint": checkpoint,
        "splits": {
            name: split if isinstance(split, str) or split is None else split.identity
            for name, split in splits.items()
        },
        "transform": dict(transforms),
        "options": protocol_options(options),
        "code": code_version(),
        "versions": dict(versions or software_versions()),
        "device": device_name(device),
    }

