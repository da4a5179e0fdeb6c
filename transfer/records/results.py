"""One JSON file per run under ``results/<protocol>/``: runs resume by skipping existing files and
``report.py`` tabulates them.

Every record has ``protocol``, ``model``, ``dataset`` and, for scored runs, ``metric`` and
``score`` (percent); protocol-specific fields sit beside them, and ``versions`` / ``created`` say
what produced it. ``provenance`` (``records.provenance``) says exactly what: checkpoint content,
split contents, transforms, protocol options, code version, libraries and device. Many-shot runs
also keep their per-image test outputs beside the JSON (``records.outputs``); ``write_run`` writes
both.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.registry import REPO_ROOT
from transfer.atomic import WriteError, check_writable_dir, write_json_atomic
from transfer.records.outputs import PerImageOutputs
from transfer.records.provenance import software_versions


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


def run_result_paths(protocol: str, model: str, args: Any, defaults: Any,
                     options: Mapping[str, str], suffixes: Sequence[str] = ("",)) -> list[Path]:
    """The result files of one run of a feature protocol from its parsed ``args`` (``defaults``:
    the parser's values for no arguments): one per suffix, named by the ``options`` that
    differ from the defaults. The scripts and sweep.py both find a run's files this way."""
    settings = changed_settings(vars(args), vars(defaults), options)
    return [result_path(protocol, model, args.dataset, suffix, args.results_dir, settings)
            for suffix in suffixes]


def check_results_dir(protocol: str, results_dir: str | Path | None = None) -> Path:
    """``results/<protocol>/``, created and checked writable before any work, so that a run
    never learns only at its end that its result cannot be saved."""
    return check_writable_dir(
        Path(results_dir or default_results_dir()) / protocol, "results folder", "--results-dir"
    )


def write_result(path: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` with versions and a timestamp, atomically."""
    payload = dict(record)
    payload.setdefault("versions", software_versions())
    payload.setdefault("created", datetime.datetime.now(datetime.timezone.utc).isoformat())
    try:
        return write_json_atomic(path, payload)
    except OSError as error:
        raise WriteError(f"cannot write the result {path}: {error.strerror or error}") from error


def read_result(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


@dataclass
class RunResult:
    """What one protocol run produced: its JSON record and, for the many-shot protocols, its
    per-image test outputs (kept apart: they are arrays, not JSON)."""

    record: dict[str, Any]
    outputs: PerImageOutputs | None = None


def write_run(path: str | Path, result: RunResult) -> Path:
    """Write the outputs (``<stem>.npz``) and then the record, each atomically: a record on disk
    always has its outputs beside it."""
    if result.outputs is not None:
        result.outputs.write(path)
    return write_result(path, result.record)
