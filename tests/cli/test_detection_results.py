"""detection_results.py on detectron2 output folders: written by the test, or copied from real
detectron2 runs (tests/fixtures/detectron2_run)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.fixtures.detectron2_scripts import load_script
from tests.fixtures.detectron2_voc import write_saved_config
from transfer.runtime.device import device_name


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


# --- real detectron2 output (tests/fixtures/detectron2_run, see its README) -------------------

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "detectron2_run"


def real_run(tmp_path: Path, name: str, *parts: str) -> Path:
    """``tmp_path/name`` holding the real files ``parts`` (``train/log.txt``, ...); the same name
    in several parts is concatenated, as detectron2 appends to log.txt."""
    run = tmp_path / name
    run.mkdir()
    for part in parts:
        with open(run / Path(part).name, "a") as f:
            f.write((REAL / part).read_text())
    return run


def record_of(script, run: Path, results: Path, *extra: str) -> dict:
    argv = ["--output-dir", str(run), "--model", "byol", "--mode", "frozen",
            "--results-dir", str(results), *extra]  # fmt: skip
    assert script.main(argv) == 0
    (path,) = (results / "detection").iterdir()
    return {"file": path.name, **json.loads(path.read_text())}


def test_real_final_evaluation_is_at_max_iter_from_either_file(script, tmp_path: Path) -> None:
    """detectron2 writes the final evaluation to metrics.json on its own line at MAX_ITER (4) and
    to log.txt after the printer's last ``iter: 3``: both give 4 iterations."""
    final = json.loads((REAL / "train" / "metrics.json").read_text().splitlines()[-1])
    assert final["iteration"] == 4 and "total_loss" not in final
    both = real_run(tmp_path, "both", "train/config.yaml", "train/metrics.json", "train/log.txt")
    from_metrics = record_of(script, both, tmp_path / "r1", "--short-schedule")
    assert from_metrics["source"] == str((both / "metrics.json").resolve())
    log_only = real_run(tmp_path, "log", "train/config.yaml", "train/log.txt")
    from_log = record_of(script, log_only, tmp_path / "r2", "--short-schedule")
    assert from_log["source"] == str((log_only / "log.txt").resolve())
    for record in (from_metrics, from_log):
        assert record["file"] == "byol__frozen__iter4.json"
        assert (record["iteration"], record["max_iter"]) == (4, 4)
        assert (record["AP"], record["AP50"], record["AP75"]) == (
            final["bbox/AP"], final["bbox/AP50"], final["bbox/AP75"])  # fmt: skip
        # a CPU run records the CPU (the environment table has no GPU line)
        assert record["provenance"]["device"] == device_name("cpu")
        assert record["provenance"]["versions"]["detectron2"] == "0.6"


def test_real_run_killed_before_its_final_evaluation_is_refused(script, tmp_path: Path,
                                                                capsys) -> None:  # fmt: skip
    """The same run cut before its final evaluation (its last metrics line and the log from the
    evaluation on): refused from either file, never recorded."""
    run = real_run(tmp_path, "cut", "train/config.yaml", "train/metrics.json", "train/log.txt")
    metrics = (run / "metrics.json").read_text().splitlines()
    (run / "metrics.json").write_text(metrics[0] + "\n")
    log = (run / "log.txt").read_text()
    (run / "log.txt").write_text(log[: log.index("Start inference")])
    argv = ["--output-dir", str(run), "--model", "byol", "--mode", "frozen",
            "--results-dir", str(tmp_path / "res"), "--short-schedule"]  # fmt: skip
    assert script.main(argv) == 2
    assert "found no final bbox evaluation" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()


def test_real_eval_only_run_in_its_own_folder(script, tmp_path: Path) -> None:
    run = real_run(tmp_path, "eval", "evalonly/config.yaml", "evalonly/log.txt")
    record = record_of(script, run, tmp_path / "res")
    assert record["file"] == "byol__frozen__evalonly.json"
    assert record["eval_only"] is True and record["iteration"] is None
    assert record["source"] == str((run / "log.txt").resolve())
    # the weights it loaded (relative to detectron2/tools, which is gone), normalised
    assert record["provenance"]["weights"] == "output/byol-frozen/model_final.pth"


def test_real_eval_only_run_into_the_training_folder(script, tmp_path: Path) -> None:
    """--eval-only into the training folder: config.yaml is the evaluation's, log.txt has both
    runs, metrics.json only training's. The record is the evaluation's, from its session."""
    run = real_run(tmp_path, "train", "evalonly/config.yaml", "train/metrics.json",
                   "train/log.txt", "evalonly/log.txt")  # fmt: skip
    record = record_of(script, run, tmp_path / "res")
    assert record["file"] == "byol__frozen__evalonly.json"
    assert record["eval_only"] is True
    assert record["source"] == str((run / "log.txt").resolve())  # not training's metrics.json


def test_real_eval_only_resume_records_the_checkpoint_it_loaded(script, tmp_path: Path) -> None:
    """``--eval-only --resume`` into the training folder loads OUTPUT_DIR's last checkpoint, not
    MODEL.WEIGHTS (still the converted pickle): the record names what the log says it loaded."""
    run = real_run(tmp_path, "train", "evalonly-resume/config.yaml", "train/metrics.json",
                   "train/log.txt", "evalonly-resume/log.txt")  # fmt: skip
    record = record_of(script, run, tmp_path / "res")
    assert record["file"] == "byol__frozen__evalonly.json" and record["eval_only"] is True
    assert record["provenance"]["weights"] == "output/byol-frozen-resume/model_final.pth"


def test_real_eval_only_of_the_converted_pickle_is_refused(script, tmp_path: Path,
                                                           capsys) -> None:  # fmt: skip
    run = real_run(tmp_path, "evalpkl", "evalonly-pkl/config.yaml", "evalonly-pkl/log.txt")
    argv = ["--output-dir", str(run), "--model", "byol", "--mode", "frozen",
            "--results-dir", str(tmp_path / "res")]  # fmt: skip
    assert script.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "--eval-only of ../../ssl-transfer/models/detectron2/byol.pkl" in err
    assert "detection heads were never trained" in err and "model_final.pth" in err
    assert "crashed or is still running" not in err
    assert not (tmp_path / "res").exists()


def test_report_keeps_one_detection_record_per_model_and_mode(script, tmp_path: Path) -> None:
    """A training record, an --eval-only one and a smoke test of the same model and mode: the
    report's detection table reads the training record only."""
    from transfer.report import gather_results

    results = tmp_path / "results"
    full = tmp_path / "full"
    write_saved_config(full)
    (full / "log.txt").write_text(LOG)
    argv = ["--model", "byol", "--mode", "frozen", "--results-dir", str(results)]
    assert script.main(["--output-dir", str(full), *argv]) == 0
    evaluation = real_run(tmp_path, "eval", "evalonly/config.yaml", "evalonly/log.txt")
    assert script.main(["--output-dir", str(evaluation), *argv]) == 0
    smoke = real_run(tmp_path, "smoke", "train/config.yaml", "train/metrics.json")
    assert script.main(["--output-dir", str(smoke), *argv, "--short-schedule"]) == 0
    assert len(list((results / "detection").iterdir())) == 3
    table = gather_results(results).detection
    assert table.to_dict("records") == [
        {"model": "byol", "mode": "frozen", "AP": 54.91, "AP50": 82.57, "AP75": 60.82}
    ]
