"""Collect the final VOC07 test AP / AP50 / AP75 of a detectron2 run into one result JSON.

detectron2's train_net.py appends one JSON object a line to ``OUTPUT_DIR/metrics.json``; the
evaluation after training adds ``bbox/AP``, ``bbox/AP50`` and ``bbox/AP75`` (percentages) on a
line of its own at iteration ``SOLVER.MAX_ITER`` (an evaluation every ``TEST.EVAL_PERIOD`` lands on
the line of the iteration it follows, ``N - 1`` after ``N`` iterations). ``log.txt`` has the same
numbers in the ``copypaste:`` lines of ``detectron2.evaluation.print_csv_format``, after the
printer's last ``iter: N - 1``. Both are read as the number of training iterations done before
the evaluation, so the recorded ``iteration`` does not depend on the file: ``MAX_ITER`` for the
final evaluation of a finished run.

Only a finished run counts: ``SOLVER.MAX_ITER`` is read from the ``OUTPUT_DIR/config.yaml`` that
detectron2's ``default_setup`` writes when a run starts. A run that crashed (or is still running)
has at most an intermediate evaluation, which would otherwise be reported as final. A run trained
on fewer images than the protocol's (``MAX_ITER x IMS_PER_BATCH`` under 144000 x 2, e.g. a smoke
test) is refused unless asked for, and is then filed as ``<model>__<mode>__iter<N>.json``.

``train_net.py --eval-only`` writes no metrics.json; its own ``config.yaml`` and a session of
``log.txt`` (whose ``Command line arguments`` show ``eval_only=True``) whose evaluation is of the
weights its checkpointer loaded. When the last session of the folder is such a run, the record is
that evaluation of those weights (``eval_only: true``), filed as ``<model>__<mode>__evalonly.json``
so that it never replaces a training run's record.

The record's ``provenance`` comes from what the run left in OUTPUT_DIR: ``config.yaml`` gives the
weights file (hashed when it can be found), the dataset names, the input transform and every
option; the environment table of the run's session in ``log.txt`` gives the GPU (``cpu: ...``
when ``MODEL.DEVICE`` is the CPU) and detectron2's version.
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
from transfer.runtime.device import device_name

METRICS = ("AP", "AP50", "AP75")
MODES = ("frozen", "finetune")
#: The protocol's schedule in images: 144k iterations at 2 images a batch.
PROTOCOL_IMAGES = 144000 * 2
_ITER = re.compile(r"\biter: (\d+)")
_COPYPASTE = "copypaste: "
_GPU = re.compile(r"^GPU [\d,]+\s+(\S.*?)\s*$")
_DETECTRON2 = re.compile(r"^detectron2\s+(\S+)")
_SESSION = "Rank of current process:"  # default_setup's first line, once per train_net.py run
_ARGUMENTS = "Command line arguments: "
_LOADING = re.compile(r"\[Checkpointer\] Loading from (.+?) \.\.\.")


class DetectionResultsError(TransferError, ValueError):
    """A detectron2 OUTPUT_DIR that holds no recordable result: no final bbox evaluation, an
    unfinished or short run, an evaluation of untrained heads, no readable config.yaml."""


def _eval_line(record: dict, max_iter: int, eval_period: int) -> int:
    """Iterations done before the evaluation on a metrics.json line (see the module docstring):
    an EVAL_PERIOD evaluation sits on iteration N - 1, the final one on MAX_ITER."""
    iteration = record["iteration"]
    periodic = eval_period > 0 and (iteration + 1) % eval_period == 0
    return iteration + 1 if periodic and iteration + 1 != max_iter else iteration


def _from_metrics_json(path: Path) -> dict[str, Any] | None:
    """The last line of metrics.json that holds the bbox metrics, or None if none does."""
    found, last_iteration = None, None
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a run killed mid-write leaves a cut last line
            continue
        if not isinstance(record, dict) or not isinstance(record.get("iteration"), int):
            continue
        last_iteration = max(record["iteration"], last_iteration or 0)
        if all(f"bbox/{m}" in record for m in METRICS):
            found = record
    if found is None:
        return None
    return {**{m: float(found[f"bbox/{m}"]) for m in METRICS}, "line": found,
            "last_logged_iteration": last_iteration, "source": str(path.resolve())}  # fmt: skip


def _bbox_blocks(lines: list[str]) -> list[tuple[dict[str, float], int | None, int | None]]:
    """Every ``copypaste: Task: bbox`` block: (scores, iterations done before it, last iteration
    logged so far); the iterations are None where no training iteration precedes it."""
    lines = [line.split(_COPYPASTE, 1)[1].strip() if _COPYPASTE in line else line
             for line in lines]  # fmt: skip
    blocks, iteration = [], None
    for idx, line in enumerate(lines):
        if line == "Task: bbox" and idx + 2 < len(lines):
            names, values = lines[idx + 1].split(","), lines[idx + 2].split(",")
            if len(names) == len(values) and all(m in names for m in METRICS):
                try:
                    scores = dict(zip(names, map(float, values), strict=True))
                except ValueError:
                    continue
                done = None if iteration is None else iteration + 1
                blocks.append(({m: scores[m] for m in METRICS}, done, iteration))
        elif match := _ITER.search(line):
            iteration = int(match.group(1))
    return blocks


def _sessions(log: Path) -> list[list[str]]:
    """log.txt split into one list of lines per train_net.py run (detectron2 appends to it)."""
    if not log.is_file():
        return []
    sessions: list[list[str]] = [[]]
    for line in log.read_text(errors="replace").splitlines():
        if _SESSION in line and sessions[-1]:
            sessions.append([])
        sessions[-1].append(line)
    return sessions


def _is_eval_only(session: list[str]) -> bool:
    return any(_ARGUMENTS in line and "eval_only=True" in line for line in session)


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


def _config_int(output_dir: Path, cfg: dict, key: str, default: int | None = None,
                minimum: int = 1) -> int:  # fmt: skip
    """An integer of the saved config, ``key`` like ``SOLVER.MAX_ITER``, checked."""
    config = output_dir / "config.yaml"
    section, name = key.split(".")
    block = cfg.get(section)
    value = block.get(name, default) if isinstance(block, dict) else default
    if value is None:
        raise DetectionResultsError(f"{config}: not a detectron2 config with {key}")
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise DetectionResultsError(f"{config}: {key} is {value!r}, not an integer >= {minimum}")
    return value


def max_iter_of_run(output_dir: Path) -> int:
    """``SOLVER.MAX_ITER`` of the run, from the full config detectron2 saved in OUTPUT_DIR."""
    return _config_int(output_dir, run_config(output_dir), "SOLVER.MAX_ITER")


def _evaluated_weights(session: list[str], cfg: dict) -> str | None:
    """What an --eval-only run evaluated: the file its checkpointer logged loading, else
    MODEL.WEIGHTS (the config it saved is its own)."""
    for line in session:
        if match := _LOADING.search(line):
            return match.group(1)
    return (cfg.get("MODEL") or {}).get("WEIGHTS") or None


def _eval_only_result(output_dir: Path, session: list[str], cfg: dict) -> dict[str, Any]:
    log = output_dir / "log.txt"
    blocks = _bbox_blocks(session)
    if not blocks:
        raise DetectionResultsError(
            f"{log}: the last run in {output_dir} is a train_net.py --eval-only run with no bbox"
            " evaluation logged: it crashed or is still running; rerun it, or collect the"
            " training run's own OUTPUT_DIR"
        )
    weights = _evaluated_weights(session, cfg)
    if weights is None or weights.endswith(".pkl"):
        raise DetectionResultsError(
            f"{log}: the last run in {output_dir} is train_net.py --eval-only of {weights}, a"
            " converted backbone whose detection heads were never trained; evaluate a trained"
            " model instead (--eval-only MODEL.WEIGHTS <training OUTPUT_DIR>/model_final.pth),"
            " or collect the training run's own OUTPUT_DIR"
        )
    return {**blocks[-1][0], "iteration": None, "max_iter": None, "short_schedule": None,
            "eval_only": True, "evaluated_weights": weights,
            "source": str(log.resolve())}  # fmt: skip


def collect_detection_result(
    output_dir: str | os.PathLike, short_schedule: bool = False
) -> dict[str, Any]:
    """AP, AP50, AP75, iteration, MAX_ITER and source file of the final evaluation of a finished
    detectron2 run (or of the --eval-only run that last used the folder); an unfinished run, or
    with ``short_schedule`` False one trained on fewer images than the protocol, is an error."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise DetectionResultsError(f"{output_dir}: no such detectron2 OUTPUT_DIR")
    metrics, log = output_dir / "metrics.json", output_dir / "log.txt"
    sessions = _sessions(log)
    if sessions and _is_eval_only(sessions[-1]):
        return _eval_only_result(output_dir, sessions[-1], run_config(output_dir))
    result = _from_metrics_json(metrics) if metrics.is_file() else None
    if result is None:
        training = [line for s in sessions if not _is_eval_only(s) for line in s]
        if blocks := _bbox_blocks(training):
            scores, done, last = blocks[-1]
            result = {**scores, "iteration": done, "last_logged_iteration": last,
                      "source": str(log.resolve())}  # fmt: skip
    if result is None:
        raise DetectionResultsError(
            f"{output_dir}: found no final bbox evaluation (expected bbox/AP, bbox/AP50, bbox/AP75"
            f" in {metrics.name}, or a 'copypaste: Task: bbox' block in {log.name}); has training"
            " finished its evaluation on voc_2007_test?"
        )
    cfg = run_config(output_dir)
    max_iter = _config_int(output_dir, cfg, "SOLVER.MAX_ITER")
    if "line" in result:
        period = _config_int(output_dir, cfg, "TEST.EVAL_PERIOD", default=0, minimum=0)
        result["iteration"] = _eval_line(result.pop("line"), max_iter, period)
    iteration, last = result["iteration"], result.pop("last_logged_iteration")
    if iteration is None or iteration < max_iter:
        evaluated = ("shows no training iteration before it" if iteration is None
                     else f"follows {iteration} iterations")  # fmt: skip
        logged = "" if last is None else f", the last logged iteration is {last}"
        raise DetectionResultsError(
            f"{result['source']}: training did not reach SOLVER.MAX_ITER = {max_iter} (the last"
            f" bbox evaluation {evaluated}{logged}); the run crashed or is still running: resume"
            " it (train_net.py --resume with the same OUTPUT_DIR) and collect it once finished"
        )
    batch = _config_int(output_dir, cfg, "SOLVER.IMS_PER_BATCH")
    short = max_iter * batch < PROTOCOL_IMAGES
    if short and not short_schedule:
        raise DetectionResultsError(
            f"{output_dir / 'config.yaml'}: SOLVER.MAX_ITER {max_iter} x IMS_PER_BATCH {batch} is"
            f" {max_iter * batch} images, short of the protocol's 144000 x 2; pass"
            f" --short-schedule to record it anyway as a short run (its file is named __iter"
            f"{max_iter}, so it never replaces a full run's)"
        )
    return {**result, "max_iter": max_iter, "short_schedule": short, "eval_only": False}


def _run_folder(output_dir: Path, cfg: dict) -> Path | None:
    """The working directory of train_net.py, when OUTPUT_DIR was relative to it (the README's
    ``./output/<run>``): output_dir minus that relative path."""
    relative = cfg.get("OUTPUT_DIR")
    if not isinstance(relative, str) or os.path.isabs(relative):
        return None
    parts = Path(os.path.normpath(relative)).parts
    absolute = output_dir.absolute()
    if ".." in parts or absolute.parts[-len(parts):] != parts:
        return None
    return Path(*absolute.parts[: -len(parts)])


def _weights_file(weights: str, output_dir: Path, cfg: dict) -> Path | None:
    """MODEL.WEIGHTS (or an evaluated checkpoint) as a file: absolute, or relative to where
    train_net.py ran (from OUTPUT_DIR when it was relative, else the working directory and the
    output folder's ancestors are tried)."""
    path = Path(weights).expanduser()
    if path.is_absolute():
        return path if path.is_file() else None
    run = _run_folder(output_dir, cfg)
    for base in (*([run] if run else []), Path.cwd(), output_dir, *output_dir.resolve().parents):
        if (base / path).is_file():
            return base / path
    return None


def detection_provenance(
    output_dir: str | os.PathLike, weights: str | None = None, evaluated: str | None = None
) -> dict:
    """``results.provenance`` of a detectron2 run from its OUTPUT_DIR (see the module docstring).

    ``checkpoint`` is the sha256 of ``weights`` (default: what an --eval-only run ``evaluated``,
    else the config's MODEL.WEIGHTS), None when the file cannot be found; ``weights`` is its path,
    made absolute and normalised when found. detectron2 reads VOC itself, so ``splits`` holds its
    dataset names (``detectron2:voc_2007_test``), not content hashes. ``code`` and library
    ``versions`` are this checkout's (it converted the weights and wrote the configs), plus the
    run's detectron2 version.
    """
    output_dir = Path(output_dir)
    config = run_config(output_dir)
    model, datasets = config.get("MODEL") or {}, config.get("DATASETS") or {}
    weights = weights or evaluated or model.get("WEIGHTS")
    found = _weights_file(weights, output_dir, config) if weights else None
    device, versions = None, software_versions()
    sessions = _sessions(output_dir / "log.txt")
    for line in sessions[-1] if sessions else []:
        if (gpu := _GPU.match(line)) and device is None:
            device = gpu.group(1)
        elif detectron2 := _DETECTRON2.match(line):
            versions["detectron2"] = detectron2.group(1)
    if str(model.get("DEVICE", "")).startswith("cpu"):
        device = device_name("cpu")  # the log has no CPU name; CPU runs are collected where run
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
    record["weights"] = str(found.resolve()) if found else weights and os.path.normpath(weights)
    return record


def detection_result_path(
    results_dir: str | os.PathLike | None, model: str, mode: str, suffix: str = ""
) -> Path:
    """Where one model's detection result lives: results/detection/<model>__<mode>[__<suffix>].json
    (``results_dir`` None: ``$SSL_TRANSFER_RESULTS``, else results/)."""
    if mode not in MODES:
        raise DetectionResultsError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    return result_path("detection", model, mode, suffix, results_dir=results_dir)


def write_detection_result(
    output_dir: str | os.PathLike,
    results_dir: str | os.PathLike | None,
    model: str,
    mode: str,
    weights: str | None = None,
    short_schedule: bool = False,
) -> Path:
    """Collect a run's final evaluation and write it atomically as its result JSON."""
    detection_result_path(results_dir, model, mode)  # a bad mode fails before any reading
    result = collect_detection_result(output_dir, short_schedule)
    evaluated = result.pop("evaluated_weights", None)
    if result.get("eval_only"):
        suffix = "evalonly"
    else:
        suffix = f"iter{result['max_iter']}" if result["short_schedule"] else ""
    path = detection_result_path(results_dir, model, mode, suffix)
    return write_json_atomic(
        path,
        {"model": model, "mode": mode, **result,
         "provenance": detection_provenance(output_dir, weights, evaluated)},
    )  # fmt: skip
