"""detection_results.py on detectron2 output folders written by the test."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.fixtures.detectron2_scripts import load_script
from tests.fixtures.detectron2_voc import write_saved_config


@pytest.fixture(scope="module")
def script():
    return load_script("detection_results.py")


def metrics_line(iteration: int, **scalars) -> str:
    """One line as detectron2's JSONWriter writes it (sorted keys, iteration included)."""
    return json.dumps({"iteration": iteration, **scalars}, sort_keys=True)


def test_final_evaluation_from_metrics_json(script, tmp_path: Path) -> None:
    run = tmp_path / "output" / "byol-frozen"
    write_saved_config(run, eval_period=5000)
    lines = [
        metrics_line(19, total_loss=1.9, lr=0.0005),
        metrics_line(4999, **{"bbox/AP": 30.5, "bbox/AP50": 60.25, "bbox/AP75": 28.0}),
        metrics_line(143979, total_loss=0.41, lr=0.000025),
        metrics_line(143999, total_loss=0.40, lr=0.000025),
        # the final evaluation: its own line, at MAX_ITER (detectron2's after_train)
        metrics_line(144000, **{
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
    assert written.pop("provenance")["checkpoint"] is None  # the config's weights are not here
    assert written == {
        "model": "byol",
        "mode": "frozen",
        "AP": 53.3241,
        "AP50": 82.0104,
        "AP75": 58.3712,
        "iteration": 144000,
        "max_iter": 144000,
        "short_schedule": False,
        "eval_only": False,
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
    write_saved_config(run, "finetune", "swav")
    (run / "log.txt").write_text(LOG)
    argv = ["--output-dir", str(run), "--model", "swav", "--mode", "finetune"]
    assert script.main([*argv, "--results-dir", str(tmp_path / "res")]) == 0
    written = json.loads((tmp_path / "res" / "detection" / "swav__finetune.json").read_text())
    assert (written["AP"], written["AP50"], written["AP75"]) == (54.91, 82.57, 60.82)
    assert written["iteration"] == 144000  # after the printer's iter: 143999, as metrics.json
    assert written["source"] == str((run / "log.txt").resolve())


ENVIRONMENT = """\
[11/27 10:00:00 detectron2]: Environment info:
----------------------  ---------------------------------------------------------------
sys.platform            linux
detectron2              0.6 @/opt/detectron2/detectron2
GPU 0,1,2,3,4,5,6,7     Tesla V100-SXM2-32GB (arch=7.0)
----------------------  ---------------------------------------------------------------
"""


def test_provenance_from_the_config_and_the_environment_table(script, tmp_path: Path) -> None:
    tools = tmp_path / "detectron2" / "tools"
    run = tools / "output" / "byol-frozen"
    run.mkdir(parents=True)
    weights = tmp_path / "models" / "detectron2" / "byol.pkl"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"converted weights")
    # as train_net.py run from tools/ leaves it: the weights path relative to tools/
    (run / "config.yaml").write_text(
        'MODEL:\n  WEIGHTS: "../../models/detectron2/byol.pkl"\n  DEVICE: cuda\n'
        "DATASETS:\n  TRAIN: [voc_2007_trainval, voc_2012_trainval]\n  TEST: [voc_2007_test]\n"
        "INPUT:\n  MIN_SIZE_TEST: 800\n  FORMAT: RGB\n"
        "SOLVER:\n  BASE_LR: 0.0025\n  IMS_PER_BATCH: 2\n  MAX_ITER: 144000\n"
        f"OUTPUT_DIR: {run}\n"
    )
    (run / "log.txt").write_text(ENVIRONMENT + LOG)
    argv = ["--output-dir", str(run), "--model", "byol", "--mode", "frozen"]
    assert script.main([*argv, "--results-dir", str(tmp_path / "res")]) == 0
    written = json.loads((tmp_path / "res" / "detection" / "byol__frozen.json").read_text())
    made = written["provenance"]
    assert made["checkpoint"] == hashlib.sha256(b"converted weights").hexdigest()
    assert made["splits"] == {"train": "detectron2:voc_2007_trainval+voc_2012_trainval",
                              "test": "detectron2:voc_2007_test"}
    assert json.loads(made["transform"]["input"]) == {"MIN_SIZE_TEST": 800, "FORMAT": "RGB"}
    assert made["options"]["SOLVER"] == {"BASE_LR": 0.0025, "IMS_PER_BATCH": 2, "MAX_ITER": 144000}
    assert made["weights"] == str(weights.resolve())  # not tools/output/byol-frozen/../../..
    assert "OUTPUT_DIR" not in made["options"]
    assert made["device"] == "Tesla V100-SXM2-32GB (arch=7.0)"
    assert made["versions"]["detectron2"] == "0.6"
    assert set(made["code"]) == {"version", "commit", "dirty"}

    # --weights names the file when the config's path does not resolve here
    other = tmp_path / "elsewhere.pkl"
    other.write_bytes(b"other weights")
    assert script.main([*argv, "--results-dir", str(tmp_path / "res"),
                        "--weights", str(other)]) == 0
    written = json.loads((tmp_path / "res" / "detection" / "byol__frozen.json").read_text())
    assert written["provenance"]["checkpoint"] == hashlib.sha256(b"other weights").hexdigest()


def test_log_fallback_when_metrics_json_has_no_evaluation(script, tmp_path: Path) -> None:
    write_saved_config(tmp_path, "frozen", "pirl")
    (tmp_path / "metrics.json").write_text(metrics_line(19, total_loss=2.0) + "\n")
    (tmp_path / "log.txt").write_text(LOG)
    argv = ["--output-dir", str(tmp_path), "--model", "pirl", "--mode", "frozen"]
    assert script.main([*argv, "--results-dir", str(tmp_path / "res")]) == 0
    written = json.loads((tmp_path / "res" / "detection" / "pirl__frozen.json").read_text())
    assert written["AP50"] == 82.57


def test_no_evaluation_is_a_clear_error(script, tmp_path: Path, capsys) -> None:
    (tmp_path / "metrics.json").write_text(metrics_line(19, total_loss=2.0) + "\n")
    argv = ["--output-dir", str(tmp_path), "--model", "byol", "--mode", "frozen"]
    assert script.main([*argv, "--results-dir", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err
    assert "found no final bbox evaluation" in err and "metrics.json" in err
    assert not (tmp_path / "res").exists()


def test_missing_output_dir_is_a_clear_error(script, tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope"
    argv = ["--output-dir", str(missing), "--model", "byol", "--mode", "frozen"]
    assert script.main(argv) == 2
    assert f"{missing}: no such detectron2 OUTPUT_DIR" in capsys.readouterr().err


def test_mode_must_be_frozen_or_finetune(script, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--output-dir", str(tmp_path), "--model", "byol", "--mode", "linear"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'linear'" in capsys.readouterr().err


def crashed_run(run: Path) -> None:
    """A run killed at iteration 80019 of 144000, after an evaluation every 80000 iterations
    (TEST.EVAL_PERIOD), which detectron2 logs on iteration 79999."""
    write_saved_config(run, eval_period=80000)
    lines = [
        metrics_line(79999, **{"bbox/AP": 41.0, "bbox/AP50": 70.5, "bbox/AP75": 44.0}),
        metrics_line(80019, total_loss=0.5),
    ]
    (run / "metrics.json").write_text("\n".join(lines) + "\n")


def test_crashed_run_is_refused(script, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    crashed_run(run)
    argv = ["--output-dir", str(run), "--model", "byol", "--mode", "frozen"]
    assert script.main([*argv, "--results-dir", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err
    assert "training did not reach SOLVER.MAX_ITER = 144000" in err
    assert "follows 80000 iterations" in err and "last logged iteration is 80019" in err
    assert len(err.strip().splitlines()) == 1
    assert "--resume" in err
    assert not (tmp_path / "res").exists()


def test_crash_in_the_last_iteration_is_refused(script, tmp_path: Path, capsys) -> None:
    """An exception in the last step still runs the evaluation, on iteration MAX_ITER - 1 (no
    EVAL_PERIOD evaluation can sit there): not a finished run."""
    write_saved_config(tmp_path)
    final = metrics_line(143999, **{"bbox/AP": 41.0, "bbox/AP50": 70.5, "bbox/AP75": 44.0})
    (tmp_path / "metrics.json").write_text(metrics_line(143979, total_loss=0.5) + "\n" + final)
    argv = ["--output-dir", str(tmp_path), "--model", "byol", "--mode", "frozen"]
    assert script.main([*argv, "--results-dir", str(tmp_path / "res")]) == 2
    assert "follows 143999 iterations" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()


def test_max_iter_is_the_runs_own(script, tmp_path: Path, capsys) -> None:
    """A run given SOLVER.MAX_ITER 80000 on its command line finished at 80000, but on fewer
    images than the protocol's: recorded only when asked, under its own name."""
    run = tmp_path / "run"
    crashed_run(run)
    write_saved_config(run, max_iter=80000)
    with open(run / "metrics.json", "a") as f:
        f.write(metrics_line(80000, **{"bbox/AP": 42.0, "bbox/AP50": 71.5, "bbox/AP75": 45.0}))
    argv = ["--output-dir", str(run), "--model", "byol", "--mode", "frozen",
            "--results-dir", str(tmp_path / "res")]  # fmt: skip
    assert script.main(argv) == 2
    err = capsys.readouterr().err
    assert "SOLVER.MAX_ITER 80000 x IMS_PER_BATCH 2 is 160000 images" in err
    assert "--short-schedule" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "res").exists()
    assert script.main([*argv, "--short-schedule"]) == 0
    assert [p.name for p in (tmp_path / "res" / "detection").iterdir()] == [
        "byol__frozen__iter80000.json"
    ]
    written = json.loads((tmp_path / "res" / "detection" / "byol__frozen__iter80000.json")
                         .read_text())  # fmt: skip
    assert (written["AP50"], written["iteration"], written["max_iter"]) == (71.5, 80000, 80000)
    assert written["short_schedule"] is True


def test_crashed_run_is_refused_from_the_log(script, tmp_path: Path, capsys) -> None:
    write_saved_config(tmp_path)
    (tmp_path / "log.txt").write_text(LOG.replace("143999", "79999").replace("143979", "79979"))
    argv = ["--output-dir", str(tmp_path), "--model", "byol", "--mode", "frozen"]
    assert script.main([*argv, "--results-dir", str(tmp_path / "res")]) == 2
    assert "did not reach SOLVER.MAX_ITER = 144000" in capsys.readouterr().err
    # an evaluation with no training iteration logged before it cannot show a finished run
    (tmp_path / "log.txt").write_text("\n".join(LOG.splitlines()[2:]) + "\n")
    assert script.main([*argv, "--results-dir", str(tmp_path / "res")]) == 2
    assert "shows no training iteration before it" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()


def test_missing_saved_config_is_a_clear_error(script, tmp_path: Path, capsys) -> None:
    (tmp_path / "log.txt").write_text(LOG)
    argv = ["--output-dir", str(tmp_path), "--model", "byol", "--mode", "frozen"]
    assert script.main([*argv, "--results-dir", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'config.yaml'} not found" in err and "SOLVER.MAX_ITER" in err
    (tmp_path / "config.yaml").write_text("SOLVER:\n  BASE_LR: 0.1\n")
    assert script.main([*argv, "--results-dir", str(tmp_path / "res")]) == 2
    assert "not a detectron2 config with SOLVER.MAX_ITER" in capsys.readouterr().err


def test_results_dir_defaults_to_the_environments(script, tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    write_saved_config(run)
    (run / "log.txt").write_text(LOG)
    monkeypatch.setenv("SSL_TRANSFER_RESULTS", str(tmp_path / "env-results"))
    # a custom model's name is a label like any other
    assert script.main(["--output-dir", str(run), "--model", "my-model", "--mode", "frozen"]) == 0
    written = tmp_path / "env-results" / "detection" / "my-model__frozen.json"
    assert json.loads(written.read_text())["AP50"] == 82.57
