"""Read ``results/<protocol>/*.json`` into pandas frames: scored protocols, detection, dense."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from transfer.errors import TransferError

SCORE_PROTOCOLS = ("linear", "few_shot", "finetune", "knn")
DETECTION_MODES = ("frozen", "finetune")
DETECTION_METRICS = ("AP", "AP50", "AP75")
# Our column (the paper's CSV name) -> the key the dense scripts write (transfer/protocols/dense/).
NORMALS_KEYS = {"normals_mean_err": "mean_angle_error", "normals_median_err": "median_angle_error",
                "normals_within_11.25": "within_11.25", "normals_within_22.5": "within_22.5",
                "normals_within_30": "within_30"}
SEGMENTATION_KEYS = {"seg_miou": "miou", "seg_pixel_acc": "pixel_accuracy"}


class ReportError(TransferError, ValueError):
    """The results folder is missing or holds no result files."""


@dataclass
class Results:
    """Every record found: scored protocols, detection runs and dense runs, one row each."""

    scores: pd.DataFrame
    detection: pd.DataFrame
    dense: pd.DataFrame
    files: int = 0
    problems: list[str] = field(default_factory=list)
    #: table name -> one row per record (model, dataset: the part it fills, file, version,
    #: splits, given, provenance), for the tables whose rows are not score records (detection,
    #: dense)
    provenance: dict[str, pd.DataFrame] = field(default_factory=dict)


_SCORE_COLUMNS = ["protocol", "model", "dataset", "metric", "score", "ci95", "ci_low", "ci_high",
                  "n_way", "n_support", "ece", "ece_scaled", "file", "canonical", "created",
                  "version", "splits", "given", "provenance"]


def _read_records(folder: Path, problems: list[str]) -> list[tuple[Path, dict[str, Any]]]:
    """The JSON objects directly in ``folder`` (not its per-run subfolders, not temp files)."""
    if not folder.is_dir():
        return []
    records = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            problems.append(f"{path}: not readable JSON ({error})")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("model"), str):
            problems.append(f"{path}: expected a JSON object with a 'model' name")
            continue
        records.append((path, record))
    return records


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _score_row(protocol: str, path: Path, record: dict[str, Any],
               problems: list[str]) -> dict[str, Any] | None:
    if not isinstance(record.get("dataset"), str) or math.isnan(_number(record.get("score"))):
        problems.append(f"{path}: expected 'dataset' and a numeric 'score'")
        return None
    if protocol == "finetune" and record.get("stage", "final") != "final":
        return None
    # the unified key first (ece_temperature_scaled), then the linear protocol's older one
    scaled = record.get("ece_temperature_scaled", record.get("ece_scaled"))
    score = _number(record["score"])  # a finetune record of several seeds: their mean
    ci95 = _number(record.get("ci95"))
    low, high = _interval(record.get("ci"))
    if math.isnan(low) and not math.isnan(ci95):  # few-shot: mean +- the episodes' 95% CI
        low, high = score - ci95, score + ci95
    return {"protocol": protocol, "model": record["model"], "dataset": record["dataset"],
            "metric": record.get("metric"), "score": score, "ci95": ci95, "ci_low": low,
            "ci_high": high, "n_way": record.get("n_way"),
            "n_support": record.get("n_support"), "ece": _number(record.get("ece")),
            "ece_scaled": _number(scaled), "file": str(path),
            "canonical": path.stem == f"{record['model']}__{record['dataset']}",
            "created": str(record.get("created", "")), **provenance_summary(record),
            **origin_fields(record)}


def _interval(value: Any) -> tuple[float, float]:
    """``[low, high]`` of a record's ``ci``, or NaNs."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        low, high = _number(value[0]), _number(value[1])
        if low <= high:
            return low, high
    return math.nan, math.nan


def provenance_summary(record: dict[str, Any]) -> dict[str, Any]:
    """``version``: the code that wrote the record (commit, ``+dirty`` when the checkout had
    changes), None without provenance; ``splits``: split name -> identity, None without."""
    provenance = record.get("provenance")
    if not isinstance(provenance, dict):
        return {"version": None, "splits": None}
    code = provenance.get("code") if isinstance(provenance.get("code"), dict) else {}
    commit = code.get("commit") or code.get("version") or "unknown"
    version = f"{commit}{'+dirty' if code.get('dirty') else ''}"
    splits = provenance.get("splits")
    return {"version": version, "splits": dict(splits) if isinstance(splits, dict) else None}


def given_name(record: dict[str, Any]) -> str:
    """The model as the user named it to the script (``--model``: ``timm:test_vit`` for the
    record filed as ``timm-test_vit+random-init``), else the name it is filed under."""
    provenance = record.get("provenance")
    for source in (provenance.get("options") if isinstance(provenance, dict) else None,
                   record.get("arguments")):
        if isinstance(source, dict) and isinstance(source.get("model"), str) and source["model"]:
            return source["model"]
    return record["model"]


def origin_fields(record: dict[str, Any]) -> dict[str, Any]:
    """``given``: :func:`given_name`; ``provenance``: the record's provenance block or None."""
    provenance = record.get("provenance")
    return {"given": given_name(record),
            "provenance": provenance if isinstance(provenance, dict) else None}


def _counted(groups: dict[str, list[str]]) -> str:
    return "; ".join(f"{key} ({len(models)}: {', '.join(models)})"
                     for key, models in sorted(groups.items()))


def provenance_warnings(rows: pd.DataFrame, label: str) -> list[str]:
    """What a table built from ``rows`` mixes: records of different code versions (commit and
    dirty flag), records with and without provenance, or different identities of one dataset's
    split; one line each, naming ``label`` and the records concerned."""
    warnings = []
    names = [f"{m}/{d}" for m, d in zip(rows["model"], rows["dataset"], strict=True)]
    versions: dict[str, list[str]] = {}
    for name, version in zip(names, rows["version"], strict=True):
        versions.setdefault(version if isinstance(version, str) else "no provenance",
                            []).append(name)
    if len(versions) > 1:
        warnings.append(f"{label} mixes records of {len(versions)} code versions: "
                        f"{_counted(versions)}")
    identities: dict[tuple[str, str], dict[str, list[str]]] = {}
    for model, dataset, splits in zip(rows["model"], rows["dataset"], rows["splits"],
                                      strict=True):
        for split, identity in (splits or {}).items():
            identities.setdefault((dataset, split), {}).setdefault(str(identity)[:12],
                                                                   []).append(model)
    for (dataset, split), groups in sorted(identities.items()):
        if len(groups) > 1:
            warnings.append(f"{label} mixes {len(groups)} identities of {dataset}'s {split} "
                            f"split: {_counted(groups)}")
    return warnings


def _nested(record: dict[str, Any], key: str) -> Any:
    """``record[key]``, or the same key one level down (e.g. under ``metrics``)."""
    if key in record:
        return record[key]
    for value in record.values():
        if isinstance(value, dict) and key in value:
            return value[key]
    return None


def gather_results(results_dir: str | Path) -> Results:
    """Read every result JSON under ``results_dir`` (the layout of ``records.results``)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise ReportError(f"{root}: no such results folder (run sweep.py or a protocol script "
                          "first, or pass --results-dir)")
    problems: list[str] = []
    files = 0
    rows = []
    for protocol in SCORE_PROTOCOLS:
        for path, record in _read_records(root / protocol, problems):
            files += 1
            if (row := _score_row(protocol, path, record, problems)) is not None:
                rows.append(row)
    scores = pd.DataFrame(rows, columns=_SCORE_COLUMNS)
    # One record per cell: the canonically named file first, then the newest.
    scores = (scores.sort_values(["canonical", "created"], ascending=False)
              .drop_duplicates(["protocol", "model", "dataset", "n_way", "n_support"])
              .sort_index())

    origins: dict[str, list[dict[str, Any]]] = {"detection": [], "dense": []}
    detection_rows, taken = [], set()
    # One record per (model, mode), the canonically named file (a training run) before an
    # __evalonly one; a smoke test (detection_results.py --short-schedule) is no table entry.
    for path, record in sorted(_read_records(root / "detection", problems),
                               key=lambda item: item[0].stem.count("__")):  # fmt: skip
        files += 1
        mode = record.get("mode")
        if mode not in DETECTION_MODES:
            problems.append(f"{path}: 'mode' should be one of {', '.join(DETECTION_MODES)}")
            continue
        if record.get("short_schedule") or (record["model"], mode) in taken:
            continue
        taken.add((record["model"], mode))
        detection_rows.append({"model": record["model"], "mode": mode,
                               **{m: _number(record.get(m)) for m in DETECTION_METRICS}})
        origins["detection"].append({"model": record["model"], "dataset": f"voc2007 {mode}",
                                     "file": str(path), **provenance_summary(record),
                                     **origin_fields(record)})
    detection = pd.DataFrame(detection_rows, columns=["model", "mode", *DETECTION_METRICS])

    dense: dict[str, dict[str, float]] = {}
    for task, keys in (("normals", NORMALS_KEYS), ("segmentation", SEGMENTATION_KEYS)):
        for path, record in _read_records(root / task, problems):
            files += 1
            values = {column: _number(_nested(record, key)) for column, key in keys.items()}
            if all(math.isnan(v) for v in values.values()):
                problems.append(f"{path}: none of the keys {', '.join(keys.values())}")
                continue
            dense.setdefault(record["model"], {}).update(values)
            origins["dense"].append({"model": record["model"], "dataset": task,
                                     "file": str(path), **provenance_summary(record),
                                     **origin_fields(record)})
    dense_frame = pd.DataFrame.from_dict(dense, orient="index")
    dense_frame.index.name = "model"
    if files == 0:
        protocols = ", ".join((*SCORE_PROTOCOLS, "detection", "normals", "segmentation"))
        raise ReportError(f"{root}: no result files (expected <protocol>/*.json for protocols "
                          f"{protocols})")
    columns = ["model", "dataset", "file", "version", "splits", "given", "provenance"]
    provenance = {name: pd.DataFrame(rows, columns=columns) for name, rows in origins.items()}
    return Results(scores, detection, dense_frame, files, problems, provenance)
