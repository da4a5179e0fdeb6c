"""Collect the final VOC07 test AP / AP50 / AP75 of a detectron2 run into one result JSON.

detectron2's train_net.py appends one JSON object a line to ``OUTPUT_DIR/metrics.json``; the
evaluation after training adds ``bbox/AP``, ``bbox/AP50`` and ``bbox/AP75`` (percentages) to the
line of its iteration. A run with ``--eval-only`` writes no metrics.json, so the fallback reads the
``copypaste:`` lines that ``detectron2.evaluation.print_csv_format`` logs to ``OUTPUT_DIR/log.txt``.

Only a finished run counts: its final evaluation is logged at iteration ``SOLVER.MAX_ITER - 1``,
read from the ``OUTPUT_DIR/config.yaml`` that detectron2's ``default_setup`` writes when training
starts. A run that crashed (or is still running) has at most an intermediate evaluation, which
would otherwise be reported as final.

The record's ``provenance`` comes from what the run left in OUTPUT_DIR: ``config.yaml`` gives the
weights file (hashed when it can be found), the dataset names, the input transform and every
option; the environment table at the top of ``log.txt`` gives the GPU and detectron2's version.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from models.weights import file_sha256
from transfer.atomic import write_json_atomic
from transfer.errors import TransferError
from transfer.records.provenance import provenance, software_versions
from transfer.records.results import result_path

METRICS = ("AP", "AP50", "AP75")
MODES = ("frozen", "finetune")
_ITER = re.compile(r"\biter: (\d+)")
_COPYPASTE = "copypaste: "
_GPU = re.compile(r"^GPU [\d,]+\s+(\S.*?)\s*$")
_DETECTRON2 = re.compile(r"^detectron2\s+(\S+)")


class DetectionResultsError(TransferError, ValueError):
    """No final bbox evaluation could be found in a detectron2 output folder."""


def _from_metrics_json(path: Path) -> dict[str, Any] | None:
    """The last line of metrics.json that holds the bbox metrics, or None if none does."""
    found, last_iteration = None, None
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a run killed mid-write leaves a cut last line
            continue
        if not isinstance(record, dict):
            continue
        if isinstance(record.get("iteration"), int):
            last_iteration = max(record["iteration"], last_iteration or 0)
        if all(f"bbox/{m}" in record for m in METRICS):
            found = record
    if found is None:
        return None
    return {
        **{m: float(found[f"bbox/{m}"]) for m in METRICS},
        "iteration": found.get("iteration"),
        "last_logged_iteration": last_iteration,
        "source": str(path.resolve()),
    }


def _from_log(path: Path) -> dict[str, Any] | None:
    """The last ``copypaste: Task: bbox`` block of a detectron2 log, or None if there is none."""
    lines = [line.split(_COPYPASTE, 1)[1].strip() if _COPYPASTE in line else line
             for line in path.read_text(errors="replace").splitlines()]  # fmt: skip
    found, iteration, last_iteration = None, None, None
    for idx, line in enumerate(lines):
        if line == "Task: bbox" and idx + 2 < len(lines):
            names, values = lines[idx + 1].split(","), lines[idx + 2].split(",")
            if len(names) == len(values) and all(m in names for m in METRICS):
                try:
                    scores = dict(zip(names, map(float, values), strict=True))
                except ValueError:
                    continue
                found = ({m: scores[m] for m in METRICS}, iteration)
        elif match := _ITER.search(line):
            iteration = last_iteration = int(match.group(1))
    if found is None:
        return None
    scores, iteration = found
    return {**scores, "iteration": iteration, "last_logged_iteration": last_iteration,
            "source": str(path.resolve())}  # fmt: skip


def run_config(output_dir: Path) -> dict[str, Any]:
    """The full config detectron2 saved in OUTPUT_DIR (``config.yaml``)."""
    config = output_dir / "config.yaml"
    if not config.is_file():
        raise DetectionResultsError(
            f"{config} not found, so there is no telling whether training reached its"
            " SOLVER.MAX_ITER (train_net.py writes it when training starts): is"
            f" {output_dir} the OUTPUT_DIR of a train_net.py run?"
        )
    try:
        cfg = yaml.safe_load(config.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise DetectionResultsError(f"{config}: not a detectron2 config ({error})") from error
    if not isinstance(cfg, dict):
        raise DetectionResultsError(f"{config}: not a detectron2 config (no mapping)")
    return cfg


def max_iter_of_run(output_dir: Path) -> int:
    """``SOLVER.MAX_ITER`` of the run, from the full config detectron2 saved in OUTPUT_DIR."""
    config = output_dir / "config.yaml"
    cfg = run_config(output_dir)
    try:
        max_iter = cfg["SOLVER"]["MAX_ITER"]
    except (KeyError, TypeError) as error:
        raise DetectionResultsError(
            f"{config}: not a detectron2 config with SOLVER.MAX_ITER ({error})"
        ) from error
    if not isinstance(max_iter, int) or isinstance(max_iter, bool) or max_iter < 1:
        raise DetectionResultsError(f"{config}: SOLVER.MAX_ITER is {max_iter!r}, not an iteration")
    return max_iter


def collect_detection_result(output_dir: str | os.PathLike) -> dict[str, Any]:
    """AP, AP50, AP75, iteration, MAX_ITER and source file of the final evaluation of a finished
    detectron2 run; an unfinished run (last evaluation before MAX_ITER - 1) is an error."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise DetectionResultsError(f"{output_dir}: no such detectron2 OUTPUT_DIR")
    metrics, log = output_dir / "metrics.json", output_dir / "log.txt"
    result = _from_metrics_json(metrics) if metrics.is_file() else None
    if result is None and log.is_file():
        result = _from_log(log)
    if result is None:
        raise DetectionResultsError(
            f"{output_dir}: found no final bbox evaluation (expected bbox/AP, bbox/AP50, bbox/AP75"
            f" in {metrics.name}, or a 'copypaste: Task: bbox' block in {log.name}); has training"
            " finished its evaluation on voc_2007_test?"
        )
    max_iter = max_iter_of_run(output_dir)
    iteration, last = result["iteration"], result.pop("last_logged_iteration")
    if not isinstance(iteration, int) or iteration + 1 < max_iter:
        evaluated = ("shows no training iteration before it" if iteration is None
                     else f"is at iteration {iteration}")  # fmt: skip
        logged = "" if last is None else f", the last logged iteration is {last}"
        raise DetectionResultsError(
            f"{result['source']}: training did not reach SOLVER.MAX_ITER = {max_iter} (the last"
            f" bbox evaluation {evaluated}{logged}); the run crashed or is still running: resume"
            " it (train_net.py --resume with the same OUTPUT_DIR) and collect it once finished"
        )
    result["max_iter"] = max_iter
    return result


def _weights_file(weights: str, output_dir: Path) -> Path | None:
    """MODEL.WEIGHTS as a file: absolute, or relative to where train_net.py ran (unknown here, so
    the working directory and the output folder's ancestors are tried)."""
    path = Path(weights).expanduser()
    if path.is_absolute():
        return path if path.is_file() else None
    for base in (Path.cwd(), output_dir, *output_dir.resolve().parents):
        if (base / path).is_file():
            return base / path
    return None


def detection_provenance(output_dir: str | os.PathLike, weights: str | None = None) -> dict:
    """``results.provenance`` of a detectron2 run from its OUTPUT_DIR (see the module docstring).

    ``checkpoint`` is the sha256 of ``weights`` (default: the config's MODEL.WEIGHTS), None when
    the file cannot be found. detectron2 reads VOC itself, so ``splits`` holds its dataset names
    (``detectron2:voc_2007_test``), not content hashes. ``code`` and library ``versions`` are this
    checkout's (it converted the weights and wrote the configs), plus the run's detectron2 version.
    """
    output_dir = Path(output_dir)
    config = run_config(output_dir)
    model, datasets = config.get("MODEL") or {}, config.get("DATASETS") or {}
    weights = weights or model.get("WEIGHTS")
    found = _weights_file(weights, output_dir) if weights else None
    device, versions = None, software_versions()
    log = output_dir / "log.txt"
    for line in log.read_text(errors="replace").splitlines() if log.is_file() else []:
        if (gpu := _GPU.match(line)) and device is None:
            device = gpu.group(1)
        elif detectron2 := _DETECTRON2.match(line):
            versions["detectron2"] = detectron2.group(1)
    record = provenance(
        file_sha256(found) if found else None,
        {role.lower(): "detectron2:" + "+".join(names)
         for role, names in datasets.items() if role in ("TRAIN", "TEST") and names},
        {"input": json.dumps(config["INPUT"], sort_keys=True)} if "INPUT" in config else {},
        {key: value for key, value in config.items() if key != "OUTPUT_DIR"},
        None,
        versions,
    )  # fmt: skip
    record["device"] = device  # the training machine's, not this one's
    record["weights"] = str(found or weights) if weights else None
    return record


def detection_result_path(results_dir: str | os.PathLike | None, model: str, mode: str) -> Path:
    """Where one model's detection result lives: results/detection/<model>__<mode>.json
    (``results_dir`` None: ``$SSL_TRANSFER_RESULTS``, else results/)."""
    if mode not in MODES:
        raise DetectionResultsError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    return result_path("detection", model, mode, results_dir=results_dir)


def write_detection_result(
    output_dir: str | os.PathLike,
    results_dir: str | os.PathLike | None,
    model: str,
    mode: str,
    weights: str | None = None,
) -> Path:
    """Collect a run's final evaluation and write it atomically as its result JSON."""
    path = detection_result_path(results_dir, model, mode)
    result = collect_detection_result(output_dir)
    return write_json_atomic(
        path,
        {"model": model, "mode": mode, **result,
         "provenance": detection_provenance(output_dir, weights)},
    )  # fmt: skip
