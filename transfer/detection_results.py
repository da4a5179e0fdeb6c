"""Collect the final VOC07 test AP / AP50 / AP75 of a detectron2 run into one result JSON.

detectron2's train_net.py appends one JSON object a line to ``OUTPUT_DIR/metrics.json``; the
evaluation after training adds ``bbox/AP``, ``bbox/AP50`` and ``bbox/AP75`` (percentages) to the
line of its iteration. A run with ``--eval-only`` writes no metrics.json, so the fallback reads the
``copypaste:`` lines that ``detectron2.evaluation.print_csv_format`` logs to ``OUTPUT_DIR/log.txt``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from transfer.atomic import write_json_atomic

METRICS = ("AP", "AP50", "AP75")
MODES = ("frozen", "finetune")
_ITER = re.compile(r"\biter: (\d+)")
_COPYPASTE = "copypaste: "


class DetectionResultsError(ValueError):
    """No final bbox evaluation could be found in a detectron2 output folder."""


def _from_metrics_json(path: Path) -> dict[str, Any] | None:
    """The last line of metrics.json that holds the bbox metrics, or None if none does."""
    found = None
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a run killed mid-write leaves a cut last line
            continue
        if isinstance(record, dict) and all(f"bbox/{m}" in record for m in METRICS):
            found = record
    if found is None:
        return None
    return {
        **{m: float(found[f"bbox/{m}"]) for m in METRICS},
        "iteration": found.get("iteration"),
        "source": str(path.resolve()),
    }


def _from_log(path: Path) -> dict[str, Any] | None:
    """The last ``copypaste: Task: bbox`` block of a detectron2 log, or None if there is none."""
    lines = [line.split(_COPYPASTE, 1)[1].strip() if _COPYPASTE in line else line
             for line in path.read_text(errors="replace").splitlines()]  # fmt: skip
    found, iteration = None, None
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
            iteration = int(match.group(1))
    if found is None:
        return None
    scores, iteration = found
    return {**scores, "iteration": iteration, "source": str(path.resolve())}


def collect_detection_result(output_dir: str | os.PathLike) -> dict[str, Any]:
    """AP, AP50, AP75, iteration and source file of the last evaluation in a detectron2 OUTPUT_DIR.

    ``iteration`` is None when only the log is there and it shows no training iteration.
    """
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
    return result


def detection_result_path(results_dir: str | os.PathLike, model: str, mode: str) -> Path:
    """Where one model's detection result lives: results/detection/<model>__<mode>.json."""
    if mode not in MODES:
        raise DetectionResultsError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    return Path(results_dir) / "detection" / f"{model}__{mode}.json"


def write_detection_result(
    output_dir: str | os.PathLike, results_dir: str | os.PathLike, model: str, mode: str
) -> Path:
    """Collect a run's final evaluation and write it atomically as its result JSON."""
    path = detection_result_path(results_dir, model, mode)
    result = collect_detection_result(output_dir)
    return write_json_atomic(path, {"model": model, "mode": mode, **result})
