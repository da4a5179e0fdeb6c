"""semantic-segmentation end to end on a tiny ADE20K tree, on CPU: train two iterations
(finite loss), evaluate multi-scale, results JSON equal to a direct recomputation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fixtures.checkpoints import write_common_checkpoint
from tests.fixtures.dense_data import make_ade20k
from tests.fixtures.detectron2_scripts import load_script
from tests.fixtures.threads import one_torch_thread  # noqa: F401 (autouse)
from transfer.protocols.dense.decoders import class_probabilities
from transfer.protocols.dense.samples import decode_label

FOLDER = "semantic-segmentation"
CONFIG = "semantic-segmentation/selfsupconfig/byol.yaml"


@pytest.fixture(scope="module")
def scripts():
    return {name: load_script(f"{FOLDER}/{name}.py") for name in ("train", "eval_multipro")}


def test_train_evaluate(scripts, tmp_path: Path, monkeypatch) -> None:
    from transfer.protocols.dense import train_loop

    shown: list[dict] = []  # TRAIN.disp_iter: iterations between the bar's loss / acc updates

    def progress(*args, **kwargs):
        bar = console_progress(*args, **kwargs)
        show = bar.set_postfix

        def set_postfix(**values):
            shown.append({"iteration": bar.n, **values})
            show(**values)

        bar.set_postfix = set_postfix
        return bar

    console_progress = train_loop.progress
    monkeypatch.setattr(train_loop, "progress", progress)
    data, models = tmp_path / "data", tmp_path / "models"
    make_ade20k(data, n_train=4, n_val=2, num_class=6)
    write_common_checkpoint(models / "byol.pth")
    ckpt = tmp_path / "ckpt"
    location = ["--device", "cpu", "--data-root", str(data), "--models-dir", str(models)]
    overrides = ["DIR", str(ckpt), "DATASET.num_class", "6", "DATASET.imgSizes", "(32, 48)",
                 "DATASET.imgMaxSize", "64", "TRAIN.epoch_iters", "2", "TRAIN.num_epoch", "1",
                 "TRAIN.workers", "0", "VAL.checkpoint", "epoch_1.pth"]
    assert scripts["train"].main(["--gpus", "0", "--cfg", CONFIG, *location, *overrides,
                                  "TRAIN.disp_iter", "2"]) == 0
    assert [entry["iteration"] for entry in shown] == [2]
    state = torch.load(ckpt / "epoch_1.pth", weights_only=True)
    assert state["iteration"] == 2 and np.isfinite(state["loss"])
    assert state["meta"]["model"] == "byol" and state["meta"]["num_class"] == 6

    results = tmp_path / "results"
    assert scripts["eval_multipro"].main(["--gpus", "0", "--cfg", CONFIG, *location,
                                          "--results-dir", str(results), "--workers", "0",
                                          *overrides]) == 0
    record = json.loads((results / "segmentation" / "byol.json").read_text())
    assert (record["protocol"], record["model"], record["dataset"]) == (
        "segmentation", "byol", "ade20k")
    assert record["test_scales"] == [32, 48] and record["images"] == 2
    made = record["provenance"]
    assert made["checkpoint"] == hashlib.sha256((models / "byol.pth").read_bytes()).hexdigest()
    assert made["trained_checkpoint"] == hashlib.sha256(
        (ckpt / "epoch_1.pth").read_bytes()).hexdigest()
    assert made["splits"] == {
        split: hashlib.sha256((data / "ADE20K" / f"{name}.odgt").read_bytes()).hexdigest()
        for split, name in (("train", "training"), ("val", "validation"))}
    assert made["transform"] == {"test": "segmentation-scales32_48-max64-pad32-norm"}

    # recompute from the checkpoint with a plain loop and a direct confusion matrix
    from transfer.protocols.dense.ade20k import read_odgt
    from transfer.protocols.dense.samples import EvalImages, Geometry
    from transfer.protocols.dense.segmentation_task import load_config, load_trained

    config = load_config(CONFIG, overrides, data_root=data, models_dir=models)
    model, _ = load_trained(config)
    items = EvalImages(read_odgt(data / "ADE20K" / "validation.odgt", data / "ADE20K"),
                       Geometry((32, 48), 64, 32), "ade20k")
    intersection, union, correct, labelled = np.zeros(6), np.zeros(6), 0, 0
    for item in items:
        label = item["label"].numpy()
        with torch.no_grad():
            pred = class_probabilities(model, item["images"], label.shape)[0].argmax(0).numpy()
        keep = label >= 0
        for c in range(6):
            intersection[c] += np.sum((pred == c) & (label == c))
            union[c] += np.sum(((pred == c) & keep) | (label == c))
        correct += np.sum((pred == label) & keep)
        labelled += keep.sum()
    iou = intersection / (union + 1e-10)
    assert record["miou"] == pytest.approx(iou.mean())
    assert record["pixel_accuracy"] == pytest.approx(100 * correct / labelled)
    assert record["score"] == pytest.approx(100 * iou.mean())
    assert decode_label(np.array([0], dtype=np.uint8), "ade20k")[0] == -1


def test_clear_errors(scripts, tmp_path: Path, capsys) -> None:
    base = ["--cfg", CONFIG, "--device", "cpu", "--data-root", str(tmp_path), "--models-dir",
            str(tmp_path)]
    assert scripts["train"].main([*base, "DIR", str(tmp_path / "c")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    write_common_checkpoint(tmp_path / "byol.pth")
    assert scripts["train"].main([*base, "DIR", str(tmp_path / "c")]) == 2
    assert "no ADE20K list" in capsys.readouterr().err
    assert scripts["eval_multipro"].main([*base, "DIR", str(tmp_path / "c")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert scripts["train"].main(["--cfg", str(tmp_path / "none.yaml"), "--device", "cpu"]) == 2
    assert "no config file" in capsys.readouterr().err
