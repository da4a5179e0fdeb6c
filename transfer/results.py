"""One JSON file per run under ``results/<protocol>/``: runs resume by skipping existing files and
``report.py`` tabulates them.

Every record has ``protocol``, ``model``, ``dataset`` and, for scored runs, ``metric`` and
``score`` (percent); protocol-specific fields sit beside them, and ``versions`` / ``created`` say
what produced it. ``provenance`` (:func:`provenance`) says exactly what: checkpoint content, split
contents, transforms, protocol options, code version, libraries and device. Many-shot runs also
keep their per-image test outputs beside the JSON (:func:`write_test_outputs`).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from models.registry import REPO_ROOT
from transfer.atomic import WriteError, atomic_path, check_writable_dir, write_json_atomic


def default_results_dir() -> Path:
    """``$SSL_TRANSFER_RESULTS`` if set, else ``results/`` in this repository."""
    env = os.environ.get("SSL_TRANSFER_RESULTS")
    return Path(env) if env else REPO_ROOT / "results"


def result_path(
    protocol: str,
    model: str,
    dataset: str,
    suffix: str = "",
    results_dir: str | Path | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Path:
    """``results/<protocol>/<model>__<dataset>[__<suffix>][__<setting>...].json``.

    ``settings`` are the options of a run that differ from the paper's (see ``changed_settings``),
    each named in the file name (``{"C": 1.0, "i": 32}`` -> ``__C1__i32``), so a run with other
    settings is filed beside the paper-settings result instead of replacing it.
    """
    parts = [f"{model}__{dataset}", suffix, *map(_setting_name, (settings or {}).items())]
    name = "__".join(part for part in parts if part)
    return Path(results_dir or default_results_dir()) / protocol / f"{name}.json"


def _setting_name(item: tuple[str, Any]) -> str:
    """``C1``, ``i32``, ``k10-20``, ``solver-torch``; a flag is its name (``nonorm``), or
    ``no<name>``."""
    key, value = item
    if isinstance(value, bool):
        return key if value else f"no{key}"
    if isinstance(value, (list, tuple)):  # e.g. --k 10 20 -> k10-20
        return key + "-".join(f"{v:.4g}" if isinstance(v, (int, float)) else str(v) for v in value)
    if isinstance(value, (int, float)):
        return f"{key}{value:.4g}"
    return f"{key}-{value}"


def changed_settings(
    values: Mapping[str, Any], defaults: Mapping[str, Any], names: Mapping[str, str]
) -> dict[str, Any]:
    """``{short name: value}`` of the options in ``names`` (option -> short name, in file-name
    order) whose value in ``values`` is not its default."""
    return {short: values[key] for key, short in names.items() if values[key] != defaults[key]}


def check_results_dir(protocol: str, results_dir: str | Path | None = None) -> Path:
    """``results/<protocol>/``, created and checked writable before any work, so that a run
    never learns only at its end that its result cannot be saved."""
    return check_writable_dir(
        Path(results_dir or default_results_dir()) / protocol, "results folder", "--results-dir"
    )


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
    try:
        return write_json_atomic(path, payload)
    except OSError as error:
        raise WriteError(f"cannot write the result {path}: {error.strerror or error}") from None


def read_result(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


# ------------------------------------------------------------------------ per-image test outputs


def outputs_path(result: str | Path) -> Path:
    """``<same stem>.npz`` beside a result JSON."""
    result = Path(result)
    return result.with_name(result.stem + ".npz")


def write_test_outputs(
    result: str | Path,
    targets: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray | None = None,
    **extra: np.ndarray,
) -> Path:
    """Write a run's test outputs atomically beside its result JSON, so any metric, calibration or
    interval can be recomputed without rerunning.

    The ``.npz`` (compressed) holds ``targets`` ((n,) int64, or (n, C) uint8 0/1 for multi-label),
    ``scores`` ((n, C) logits, column ``j`` for class ``classes[j]``) and ``classes`` ((C,) int64,
    ``arange(C)`` unless given), plus any ``extra`` arrays. Single-label scores are stored as
    float16 after subtracting each row's maximum: the argmax (so accuracy), the softmax (so
    calibration) and the order within a row are unchanged, the top logit is exactly 0, and float16
    keeps ~3 significant digits of the gaps to it. Multi-label scores are ranked down each column
    (per-class AP), where float16 rounding of raw logits would create ties that change the AP, so
    they are stored as float32 (VOC2007's 4952 x 20 test set is small anyway).
    """
    targets = np.asarray(targets)
    scores = np.asarray(scores)
    if scores.ndim != 2 or len(scores) != len(targets):
        raise ValueError(f"scores must be (n, C) for {len(targets)} targets, got {scores.shape}")
    multilabel = targets.ndim == 2
    stored_targets = targets.astype(np.uint8 if multilabel else np.int64)
    stored_scores = compact_scores(scores, multilabel)
    classes = np.arange(scores.shape[1]) if classes is None else np.asarray(classes)
    if classes.shape != (scores.shape[1],):
        raise ValueError(f"classes must be ({scores.shape[1]},), got {classes.shape}")
    path = outputs_path(result)
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(
                handle,
                targets=stored_targets,
                scores=stored_scores,
                classes=classes.astype(np.int64),
                **extra,
            )
    except OSError as error:
        reason = error.strerror or error
        raise WriteError(f"cannot write the test outputs {path}: {reason}") from None
    return path


def compact_scores(scores: np.ndarray, multilabel: bool) -> np.ndarray:
    """Scores (..., C) as :func:`write_test_outputs` stores them: single-label as float16 after
    subtracting each row's maximum (gaps beyond float16's range, 65504, are clipped to it, which
    leaves the argmax and the softmax as they were); multi-label as float32."""
    scores = np.asarray(scores, dtype=np.float64)
    if multilabel:
        return scores.astype(np.float32)
    shifted = scores - scores.max(axis=-1, keepdims=True)
    return np.clip(shifted, float(np.finfo(np.float16).min), 0.0).astype(np.float16)


def read_test_outputs(result: str | Path) -> dict[str, np.ndarray]:
    """The arrays :func:`write_test_outputs` stored beside ``result`` (the JSON or the .npz)."""
    with np.load(outputs_path(result)) as stored:
        return {name: stored[name] for name in stored.files}


# ------------------------------------------------------------------------------- provenance

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
        key: _plain(value)
        for key, value in sorted(arguments.items())
        if key not in NOT_PROTOCOL_OPTIONS
    }


def _plain(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
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


def device_name(device: str | None) -> str:
    """The accelerator's name (``torch.cuda.get_device_name``) or the CPU's."""
    import torch

    kind = torch.device(device or "cpu")
    if kind.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(kind)
    processor = platform.processor() or platform.machine() or "unknown"
    return f"{kind.type}: {processor}"


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
