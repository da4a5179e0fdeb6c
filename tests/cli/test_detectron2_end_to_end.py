"""The documented detection commands end to end, on the CPU, in the documented layout.

Real ``detectron2/`` (the source tree's configs/ and tools/train_net.py) and ``ssl-transfer/``
(our configs, a converted synthetic checkpoint) side by side; ``tools/train_net.py --config-file
../../ssl-transfer/detectron2-configs/<mode>/byol.yaml`` from detectron2/tools with the CPU and
smoke-test overrides, trained on a VOC07+12 fixture in the official layout and evaluated on
voc_2007_test; then ``detection_results.py`` records it. The backbone the run used is checked
against torchvision's trunk, so a wrong key renaming or pixel mean/std fails here too.

What this cannot show: the paper's AP (real VOC, 144k iterations, a GPU). On this fixture only
dog and cat occur, so AP50 is at most 100 x 2 / 20 = 10.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.detectron2_features import (
    STAGES,
    detectron2_stages,
    relative_error,
    sample_image,
    torchvision_stages,
)
from tests.fixtures.detectron2_layout import SMALL_RUN, documented_layout, train_net
from tests.fixtures.detectron2_scripts import REPO
from tests.fixtures.detectron2_shim import NOT_INSTALLED, detectron2_source, import_detectron2

pytestmark = [pytest.mark.detectron2, pytest.mark.slow]
if import_detectron2() is None:
    pytest.skip(NOT_INSTALLED, allow_module_level=True)
SOURCE = detectron2_source()
if SOURCE is None:
    pytest.skip("no detectron2 source tree with tools/train_net.py and configs/ (a wheel ships"
                " neither): set DETECTRON2_SOURCE, or run .ci/install-detectron2",
                allow_module_level=True)  # fmt: skip

_RUNS: dict[str, subprocess.CompletedProcess] = {}


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> dict:
    return documented_layout(tmp_path_factory.mktemp("detection"), SOURCE)


def config_arg(mode: str) -> str:
    return f"../../ssl-transfer/detectron2-configs/{mode}/byol.yaml"  # as the docs write it


def trained(layout: dict, mode: str) -> Path:
    """OUTPUT_DIR of the documented training command for ``mode`` (run once per module)."""
    output = layout["tools"] / "output" / f"byol-{mode}"
    if mode not in _RUNS:
        _RUNS[mode] = train_net(layout["tools"], layout["datasets"], "--config-file",
                                config_arg(mode), *SMALL_RUN, "OUTPUT_DIR",
                                f"./output/byol-{mode}")  # fmt: skip
    proc = _RUNS[mode]
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return output


def collect(output: Path, mode: str, results: Path, *extra: str):
    """``python detection_results.py`` from the repository, as documented."""
    return subprocess.run(
        [sys.executable, "detection_results.py", "--output-dir", str(output), "--model", "byol",
         "--mode", mode, "--results-dir", str(results), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def final_lines(output: Path) -> tuple[dict, list[float]]:
    """The last bbox line of metrics.json and the last copypaste AP,AP50,AP75 values of log.txt."""
    records = [json.loads(line) for line in (output / "metrics.json").read_text().splitlines()]
    final = [r for r in records if "bbox/AP" in r][-1]
    log = (output / "log.txt").read_text().splitlines()
    at = max(i for i, line in enumerate(log) if line.endswith("copypaste: Task: bbox"))
    values = [float(v) for v in log[at + 2].split("copypaste: ")[1].split(",")]
    return final, values


def assert_backbone_is_torchvisions(config: Path, weights: Path, layout: dict, stages) -> None:
    image = sample_image()
    ours = detectron2_stages(config, weights, image)
    reference = torchvision_stages(layout["saved"], image, "byol")
    for stage in stages:
        error = relative_error(ours[stage], reference[stage])
        assert error < 1e-5, f"{config} with {weights.name}: {stage} relative error {error:.2e}"


def test_documented_command_trains_evaluates_and_is_recorded(layout, tmp_path) -> None:
    """The frozen config (the finetune one differs only in FREEZE_AT, which the feature test and
    test_detectron2_train.py cover in detectron2; one training run keeps this test short)."""
    mode = "frozen"
    output = trained(layout, mode)
    final, logged = final_lines(output)
    # detectron2 writes the final evaluation on a line of its own, at MAX_ITER
    assert final["iteration"] == 4 and "total_loss" not in final
    assert [final["bbox/AP"], final["bbox/AP50"], final["bbox/AP75"]] == pytest.approx(
        logged, abs=1e-4)  # fmt: skip
    assert 0 <= final["bbox/AP50"] <= 10 + 1e-6  # only 2 of the 20 classes occur

    # the run used the backbone torchvision computes: its saved config (pixel mean/std, format)
    # with the pickle it loaded; a frozen run's stem..res4 are still those after training
    pkl = layout["repo"] / "models" / "detectron2" / "byol.pkl"
    assert_backbone_is_torchvisions(output / "config.yaml", pkl, layout, STAGES)
    assert_backbone_is_torchvisions(output / "config.yaml", output / "model_final.pth", layout,
                                    ["res2", "res3", "res4"])  # fmt: skip

    results = tmp_path / "results"
    refused = collect(output, mode, results)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: ") and len(refused.stderr.splitlines()) == 1
    assert "SOLVER.MAX_ITER 4 x IMS_PER_BATCH 2 is 8 images" in refused.stderr
    assert "--short-schedule" in refused.stderr and not results.exists()

    done = collect(output, mode, results, "--short-schedule")
    assert done.returncode == 0, done.stderr
    path = results / "detection" / f"byol__{mode}__iter4.json"
    record = json.loads(path.read_text())
    assert (record["AP"], record["AP50"], record["AP75"]) == (
        final["bbox/AP"], final["bbox/AP50"], final["bbox/AP75"])  # fmt: skip
    assert (record["iteration"], record["max_iter"]) == (4, 4)
    assert record["short_schedule"] is True and record["eval_only"] is False
    made = record["provenance"]
    assert made["weights"] == str(pkl.resolve())
    assert made["checkpoint"] == hashlib.sha256(pkl.read_bytes()).hexdigest()
    assert made["device"].startswith("cpu")
    assert made["versions"]["detectron2"] == __import__("detectron2").__version__
    assert made["splits"] == {"train": "detectron2:voc_2007_trainval+voc_2012_trainval",
                              "test": "detectron2:voc_2007_test"}  # fmt: skip
    assert made["options"]["MODEL"]["BACKBONE"]["FREEZE_AT"] == 4


def test_eval_only_run_is_recorded_as_an_evaluation_of_its_weights(layout, tmp_path) -> None:
    """--eval-only of the trained model into a folder of its own (into the training folder, and
    with --resume: tests/cli/test_detection_results.py, on real output of such runs)."""
    training = trained(layout, "frozen")
    final, _ = final_lines(training)
    proc = train_net(layout["tools"], layout["datasets"], "--config-file", config_arg("frozen"),
                     "--eval-only", *SMALL_RUN, "MODEL.WEIGHTS",
                     "./output/byol-frozen/model_final.pth", "OUTPUT_DIR",
                     "./output/byol-frozen-eval")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    output = layout["tools"] / "output" / "byol-frozen-eval"
    done = collect(output, "frozen", tmp_path / "results")
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "results/detection/byol__frozen__evalonly.json").read_text())
    # the same weights on the same images: training's final numbers, from this run's log
    assert [record["AP"], record["AP50"], record["AP75"]] == pytest.approx(
        [final["bbox/AP"], final["bbox/AP50"], final["bbox/AP75"]], abs=1e-4)  # fmt: skip
    assert record["eval_only"] is True and record["iteration"] is None
    assert record["source"] == str((output / "log.txt").resolve())
    model_final = (training / "model_final.pth").resolve()
    assert record["provenance"]["weights"] == str(model_final)
    assert record["provenance"]["checkpoint"] == hashlib.sha256(
        model_final.read_bytes()).hexdigest()  # fmt: skip
