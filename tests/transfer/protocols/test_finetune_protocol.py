"""The finetuning protocol (transfer/protocols/finetune.py, finetune_runs.py): the paper's grid,
the search -> retrain flow, the records, resumption (skipped points, an interrupted point), and
the metric paths for a single-label (Flowers: mean per-class accuracy) and the multi-label
(VOC2007: 11-point mAP) set, on tiny fixtures in the official layouts."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from sklearn.metrics import precision_recall_curve

from datasets import load_split
from models import BackboneOptions
from tests.fixtures.dataset_layouts import write_layout
from tests.fixtures.threads import one_torch_thread  # noqa: F401 (autouse)
from transfer.protocols import finetune_loop as train_module
from transfer.protocols.finetune import run_finetune
from transfer.protocols.finetune_runs import (
    FinetuneError,
    FinetuneSettings,
    best_point,
    finetune_grid,
    optimizer_weight_decay,
    point_name,
)
from transfer.records.outputs import read_test_outputs
from transfer.stats.bootstrap import bootstrap_ci
from transfer.stats.calibration import expected_calibration_error


def test_grid_is_specs_twenty_pairs_in_the_original_order():
    lrs = 10.0 ** np.array([-1.0, -2.0, -3.0, -4.0])  # logspace(-4, -1, 4), largest first
    wds = np.array([0.0, 1e-6, 1e-5, 1e-4, 1e-3])  # [0] + logspace(-6, -3, 4)
    expected = [(lr, wd) for lr in lrs for wd in wds]
    grid = finetune_grid()
    assert len(grid) == 20
    np.testing.assert_allclose(np.array(grid), np.array(expected), rtol=1e-12, atol=0)
    # the original built it with float32 torch and stored (lr, wd / lr) for the optimiser
    lr_t = torch.logspace(-4, -1, 4).flip(dims=(0,))
    wd_t = torch.cat([torch.zeros(1), torch.logspace(-6, -3, 4)])
    original = [(lr.item(), (wd / lr).item()) for lr in lr_t for wd in wd_t]
    ours = [(lr, optimizer_weight_decay(lr, wd)) for lr, wd in grid]
    np.testing.assert_allclose(np.array(ours), np.array(original), rtol=1e-6)
    assert finetune_grid(1) == [(1e-4, 0.0), (1e-4, 1e-6)]
    assert len(finetune_grid(3)) == 12
    assert len({point_name(*p) for p in finetune_grid(5)}) == 30  # file names never collide
    assert point_name(0.01, 1e-5) == "lr0.01_wd1e-05"
    with pytest.raises(FinetuneError, match="grid size"):
        finetune_grid(0)


def test_best_point_keeps_the_first_of_equal_scores():
    records = [{"lr": 0.1, "score": 50.0}, {"lr": 0.01, "score": 70.0},
               {"lr": 0.001, "score": 70.0}]
    assert best_point(records)["lr"] == 0.01


# timm's 372k-parameter test ResNet, seeded: the protocol, not the model, is under test here
TINY = dict(model="timm:test_resnet", backbone=BackboneOptions(random_init=True))
NAME = "timm-test_resnet+random-init"
TINY_STATS = "-mean0.5_0.5_0.5-std0.5_0.5_0.5"  # its own normalisation


def settings(root, results, **extra) -> FinetuneSettings:
    options = dict(**TINY, dataset="flowers", image_size=16, steps=2, grid_size=1,
                   batch_size=4, workers=0, checkpoint_every=0, data_root=str(root),
                   results_dir=str(results), progress=False)
    return FinetuneSettings(**{**options, **extra})


def mean_per_class_accuracy(targets, predictions) -> float:
    classes = np.unique(targets)
    return 100.0 * np.mean([np.mean(predictions[targets == c] == c) for c in classes])


def test_search_retrain_records_and_resumption(tmp_path, monkeypatch, caplog):
    write_layout("flowers", tmp_path / "data", per_class=4)
    stem = f"{NAME}__flowers"
    # uninterrupted reference run
    first = run_finetune(settings(tmp_path / "data", tmp_path / "a"))
    folder = tmp_path / "a" / "finetune"
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    assert names == [stem, f"{stem}.json", f"{stem}.npz", f"{stem}/lr0.0001_wd0.json",
                     f"{stem}/lr0.0001_wd1e-06.json"]
    points = [json.loads((folder / stem / f"{n}.json").read_text())
              for n in ("lr0.0001_wd0", "lr0.0001_wd1e-06")]
    # weight_decay is read back from the optimiser: the original's wd / lr, not the grid's wd
    assert [(p["lr"], p["wd"], p["weight_decay"]) for p in points] == [
        (1e-4, 0.0, 0.0), (1e-4, 1e-6, pytest.approx(1e-6 / 1e-4, rel=1e-12))]
    assert all(p["eval_split"] == "val" and p["n_train"] == 12 and p["n_eval"] == 12
               for p in points)
    final = json.loads((folder / f"{stem}.json").read_text())
    assert final == json.loads(json.dumps(first))
    assert final["grid"] == [{"lr": p["lr"], "wd": p["wd"], "score": p["score"]} for p in points]
    best = points[1] if points[1]["score"] > points[0]["score"] else points[0]
    assert (final["lr"], final["wd"], final["val_score"]) == (best["lr"], best["wd"],
                                                              best["score"])
    assert final["eval_split"] == "test" and final["n_train"] == 24 and final["n_eval"] == 12
    assert final["weight_decay"] == pytest.approx(final["wd"] / final["lr"], rel=1e-12)
    outputs = read_test_outputs(folder / f"{stem}.json")
    logits = outputs["scores"].astype(np.float64)  # float16, each row shifted to a top of 0
    targets = load_split("flowers", "test", tmp_path / "data").targets
    assert logits.shape == (12, 102) and outputs["scores"].dtype == np.float16
    np.testing.assert_array_equal(outputs["targets"], targets)
    np.testing.assert_array_equal(outputs["classes"], np.arange(102))
    assert final["metric"] == "mean_per_class_accuracy"
    assert final["score"] == pytest.approx(mean_per_class_accuracy(targets, logits.argmax(1)))
    # float16 keeps the gaps to the top logit to ~3 digits: enough for the ECE; the fitted
    # temperature of this untrained model's near-equal logits is not that stable
    assert final["ece"] == pytest.approx(expected_calibration_error(logits, targets), abs=0.05)
    assert final["ci"] == list(bootstrap_ci(final["metric"], targets, logits))
    assert final["interval"] == {"method": "bootstrap", "level": 0.95, "resamples": 2000,
                                 "seed": 0, "test_images": 12}
    assert set(final["provenance"]["splits"]) == {"train", "val", "trainval", "test"}
    assert final["provenance"]["splits"]["test"] == load_split(
        "flowers", "test", tmp_path / "data").identity
    assert final["provenance"]["transform"] == {
        "train": f"train-16-norm{TINY_STATS}", "eval": f"eval-16-norm{TINY_STATS}"}

    # interrupted (Ctrl-C right after the step-1 checkpoint of the first point), then resumed
    real_save = train_module.save_checkpoint

    def save_then_interrupt(path, state, context):
        real_save(path, state, context)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_finetune(settings(tmp_path / "data", tmp_path / "b", checkpoint_every=1))
    monkeypatch.undo()
    folder_b = tmp_path / "b" / "finetune"
    assert sorted(str(p.relative_to(folder_b)) for p in folder_b.rglob("*")) == [
        stem, f"{stem}/ckpt", f"{stem}/ckpt/lr0.0001_wd0.pt"]
    caplog.set_level("INFO", logger="transfer")
    caplog.clear()
    resumed = run_finetune(settings(tmp_path / "data", tmp_path / "b"))
    assert any("resuming from step 1 of 2" in m for m in caplog.messages)
    assert not (folder_b / stem / "ckpt").exists()
    for key in ("score", "lr", "wd", "weight_decay", "grid", "ece", "train_loss"):
        assert resumed[key] == first[key], key  # same seed, same data order: the same numbers

    # a finished point is skipped; a deleted one is trained again
    kept = folder_b / stem / "lr0.0001_wd0.json"
    kept_mtime = kept.stat().st_mtime_ns
    (folder_b / f"{stem}.json").unlink()
    (folder_b / stem / "lr0.0001_wd1e-06.json").unlink()
    caplog.clear()
    again = run_finetune(settings(tmp_path / "data", tmp_path / "b"))
    assert any("[1/2] lr0.0001_wd0: done" in m and "skipped" in m for m in caplog.messages)
    assert any(m.startswith("[2/2] lr0.0001_wd1e-06: val") for m in caplog.messages)
    assert kept.stat().st_mtime_ns == kept_mtime
    assert (folder_b / stem / "lr0.0001_wd1e-06.json").exists()
    assert again["score"] == first["score"] and again["grid"] == first["grid"]

    # everything done: read back, nothing trained
    caplog.clear()
    assert run_finetune(settings(tmp_path / "data", tmp_path / "b"))["score"] == first["score"]
    assert caplog.messages == [f"{folder_b / f'{stem}.json'} exists: nothing to do"]

    # records of another recipe are never mixed in
    with pytest.raises(FinetuneError, match=rf"{re.escape(stem)}\.json was made with other "
                                            r"settings \(steps differ\)"):
        run_finetune(settings(tmp_path / "data", tmp_path / "b", steps=3))


def voc11_map_reference(targets: np.ndarray, scores: np.ndarray) -> float:
    """The original's computation: sklearn's precision-recall curve, 11 recall thresholds."""
    aps = []
    for c in range(targets.shape[1]):
        precision, recall, _ = precision_recall_curve(targets[:, c], scores[:, c])
        aps.append(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                            for t in np.linspace(0, 1, 11)]))
    return 100.0 * float(np.mean(aps))


def test_multilabel_voc2007_uses_bce_and_11_point_map(tmp_path):
    write_layout("voc2007", tmp_path / "data")
    record = run_finetune(settings(tmp_path / "data", tmp_path / "r", dataset="voc2007",
                                   lr=0.01, wd=1e-4, steps=2, checkpoint_every=0))
    path = tmp_path / "r" / "finetune" / f"{NAME}__voc2007__lr0.01_wd0.0001.json"
    assert json.loads(path.read_text())["score"] == record["score"]
    assert record["metric"] == "voc11_map" and record["selection"] == "given"
    assert record["ece"] is None and record["ece_temperature_scaled"] is None
    assert record["weight_decay"] == pytest.approx(1e-2)
    assert (record["n_train"], record["n_eval"]) == (20, 10)
    assert np.isfinite(record["train_loss"])
    logits = read_test_outputs(path)["scores"]
    targets = load_split("voc2007", "test", tmp_path / "data").targets
    assert logits.shape == targets.shape == (10, 20)
    assert record["score"] == pytest.approx(voc11_map_reference(targets, logits))


def test_bad_settings_are_named():
    with pytest.raises(FinetuneError, match="both --lr and --wd"):
        run_finetune(FinetuneSettings(model="random", dataset="digits", lr=0.1))
    with pytest.raises(FinetuneError, match="steps must be >= 1"):
        run_finetune(FinetuneSettings(model="random", dataset="digits", steps=0))
