"""detection_results.py on detectron2 output folders written by the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.detectron2_scripts import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("detection_results.py")


def metrics_line(iteration: int, **scalars) -> str:
    """One line as detectron2's JSONWriter writes it (sorted keys, iteration included)."""
    return json.dumps({"iteration": iteration, **scalars}, sort_keys=True)


def test_final_evaluation_from_metrics_json(script, tmp_path: Path) -> None:
    run = tmp_path / "output" / "byol-frozen"
    run.mkdir(parents=True)
    lines = [
        metrics_line(19, total_loss=1.9, lr=0.0005),
        metrics_line(4999, **{"bbox/AP": 30.5, "bbox/AP50": 60.25, "bbox/AP75": 28.0}),
        metrics_line(143979, total_loss=0.41, lr=0.000025),
        metrics_line(143999, total_loss=0.40, **{
            "bbox/AP": 53.3241, "bbox/AP50": 82.0104, "bbox/AP75": 58.3712,
            "bbox/AP-aeroplane": 60.1,
        }),
        '{"iteration": 144000, "total_lo',  # a cut line from a killed writer
    ]  # fmt: skip
    (run / "metrics.json").write_text("\n".join(lines) + "\n")
    (run / "log.txt").write_text(
        "copypaste: Task: bbox\ncopypaste: AP,AP50,AP75\ncopypaste: 1,2,3\n"
    )
    results = tmp_path / "results"
    argv = ["--output-dir", str(run), "--model", "byol", "--mode", "frozen"]
    assert script.main([*argv, "--results-dir", str(results)]) == 0
    written = json.loads((results / "detection" / "byol__frozen.json").read_text())
    assert written == {
        "model": "byol",
        "mode": "frozen",
        "AP": 53.3241,
        "AP50": 82.0104,
        "AP75": 58.3712,
        "iteration": 143999,
        "source": str((run / "metrics.json").resolve()),
    }
    assert [p.name for p in (results / "detection").iterdir()] == ["byol__frozen.json"]


LOG = """\
[11/28 09:12:01 d2.utils.events]:  eta: 0:00:01  iter: 143979  total_loss: 0.4  lr: 2.5e-05
[11/28 09:12:03 d2.utils.events]:  eta: 0:00:00  iter: 143999  total_loss: 0.39  lr: 2.5e-05
[11/28 09:20:44 d2.evaluation.pascal_voc_evaluation]: Evaluating voc_2007_test using 2007 metric.
[11/28 09:20:50 d2.engine.defaults]: Evaluation results for voc_2007_test in csv format:
[11/28 09:20:50 d2.evaluation.testing]: copypaste: Task: bbox
[11/28 09:20:50 d2.evaluation.testing]: copypaste: AP,AP50,AP75
[11/28 09:20:50 d2.evaluation.testing]: copypaste: 54.9100,82.5700,60.8200
"""


def test_log_fallback_without_metrics_json(script, tmp_path: Path) -> None:
    run = tmp_path / "swav-finetune"
    run.mkdir()
    (run / "log.txt").write_text(LOG)
    argv = ["--output-dir", str(run), "--model", "swav", "--mode", "finetune"]
    assert script.main([*argv, "--results-dir", str(tmp_path / "res")]) == 0
    written = json.loads((tmp_path / "res" / "detection" / "swav__finetune.json").read_text())
    assert (written["AP"], written["AP50"], written["AP75"]) == (54.91, 82.57, 60.82)
    assert written["iteration"] == 143999
    assert written["source"] == str((run / "log.txt").resolve())


def test_log_fallback_when_metrics_json_has_no_evaluation(script, tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text(metrics_line(19, total_loss=2.0) + "\n")
    (tmp_path / "log.txt").write_text(LOG)
    argv = ["--output-dir", str(tmp_path), "--model", "pirl", "--mode", "frozen"]
    assert script.main([*argv, "--results-dir", str(tmp_path / "res")]) == 0
    written = json.loads((tmp_path / "res" / "detection" / "pirl__frozen.json").read_text())
    assert written["AP50"] == 82.57


def test_no_evaluation_is_a_clear_error(script, tmp_path: Path, capsys) -> None:
    (tmp_path / "metrics.json").write_text(metrics_line(19, total_loss=2.0) + "\n")
    argv = ["--output-dir", str(tmp_path), "--model", "byol", "--mode", "frozen"]
    assert script.main([*argv, "--results-dir", str(tmp_path / "res")]) == 1
    err = capsys.readouterr().err
    assert "found no final bbox evaluation" in err and "metrics.json" in err
    assert not (tmp_path / "res").exists()


def test_missing_output_dir_is_a_clear_error(script, tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope"
    argv = ["--output-dir", str(missing), "--model", "byol", "--mode", "frozen"]
    assert script.main(argv) == 1
    assert f"{missing}: no such detectron2 OUTPUT_DIR" in capsys.readouterr().err


def test_mode_must_be_frozen_or_finetune(script, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--output-dir", str(tmp_path), "--model", "byol", "--mode", "linear"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'linear'" in capsys.readouterr().err
