"""linear.py end to end on fixtures in official layouts, against an independent scikit-learn
computation written the way the original did it."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix

import linear
from datasets import build_transform, load_split
from models.backbone import load_backbone
from tests.fixtures.checkpoints import write_common_format
from tests.fixtures.dataset_layouts import write_layout

IMAGE_SIZE = 32


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    write_common_format(folder / "tiny-resnet.pth", seed=7)
    return folder


def linear_argv(dataset, models_dir, data_root, tmp_path, *extra):
    """linear.py's arguments for the synthesised model on a fixture, caches under tmp_path."""
    return [
        "-d", dataset, "-m", "tiny-resnet", "-i", str(IMAGE_SIZE), *extra,
        "--models-dir", str(models_dir), "--data-root", str(data_root),
        "--cache-dir", str(tmp_path / "f"), "--results-dir", str(tmp_path / "r"),
        "--device", "cpu", "--workers", "0",
    ]  # fmt: skip


def direct_features(backbone, split) -> np.ndarray:
    transform = build_transform("eval", IMAGE_SIZE, backbone.normalize)
    images = torch.stack([transform(split.load_image(i)) for i in range(len(split))])
    with torch.no_grad():
        return backbone.trunk.eval()(images).double().numpy()


def original_linear(train, val, trainval, test, metric):
    """The original's procedure: one warm-started estimator walked along C = 1 / logspace(-6, 5,
    45) (float32, as torch.logspace gave it), first best on val wins, then refit on trainval."""
    clf = LogisticRegression(solver="lbfgs", warm_start=True)

    def fit_and_score(x, y, xt, yt):
        clf.fit(x, y)
        predictions = clf.predict(xt)
        if metric == "accuracy":
            return 100.0 * np.mean(predictions == yt)
        cm = confusion_matrix(yt, predictions)
        return 100.0 * np.mean(cm.diagonal() / cm.sum(axis=1))

    best, best_C = 0.0, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for wd in np.logspace(-6, 5, 45).astype(np.float32):
            C = 1.0 / float(wd)
            clf.set_params(C=C)
            score = fit_and_score(*train, *val)
            if score > best:
                best, best_C = score, C
        clf.set_params(C=best_C)
        return best_C, fit_and_score(*trainval, *test)


@pytest.mark.parametrize("dataset", ["dtd", "pets"])
def test_chosen_C_and_score_equal_an_independent_sklearn_run(dataset, models_dir, tmp_path, capsys):
    data_root = tmp_path / "data"
    write_layout(dataset, data_root, per_class=6)
    argv = linear_argv(dataset, models_dir, data_root, tmp_path)
    assert linear.main(argv) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "r" / "linear" / f"tiny-resnet__{dataset}.json").read_text())

    backbone = load_backbone("tiny-resnet", models_dir)
    parts = {
        name: load_split(dataset, name, data_root) for name in ("train", "val", "trainval", "test")
    }
    xy = {name: (direct_features(backbone, split), split.targets) for name, split in parts.items()}
    metric = record["metric"]
    C, score = original_linear(
        xy["train"],
        xy["val"],
        xy["trainval"],
        xy["test"],
        "accuracy" if metric == "accuracy" else "mean_per_class",
    )
    assert record["C"] == pytest.approx(C, rel=1e-6)
    assert record["score"] == pytest.approx(score, abs=1e-6)
    assert (
        f"Final accuracy for tiny-resnet on {dataset}: {score:.2f}% using hyperparameter "
        f"C: {C:.3f}" in out
    )
    assert "ECE: " in out and "temperature scaled ECE: " in out
    assert len(record["val_scores"]) == 45
    assert record["sizes"]["train"] + record["sizes"]["val"] == record["sizes"]["trainval"]

    # a rerun reads every feature from the cache
    assert linear.main(argv) == 0
    capsys.readouterr()
    again = json.loads((tmp_path / "r" / "linear" / f"tiny-resnet__{dataset}.json").read_text())
    assert again["features_cached"] and again["score"] == record["score"]

    # the torch solver makes the same fits: the same C and score
    assert linear.main([*argv, "--solver", "torch"]) == 0
    capsys.readouterr()
    torch_run = json.loads((tmp_path / "r" / "linear" / f"tiny-resnet__{dataset}.json").read_text())
    assert torch_run["solver"] == "torch" and torch_run["features_cached"]
    assert torch_run["C"] == record["C"]
    assert torch_run["score"] == pytest.approx(record["score"], abs=1e-6)
    assert torch_run["ece"] == pytest.approx(record["ece"], abs=1e-4)


def test_voc_map_with_given_C(models_dir, tmp_path, capsys):
    data_root = tmp_path / "data"
    write_layout("voc2007", data_root, per_class=4)
    argv = linear_argv("voc2007", models_dir, data_root, tmp_path, "--C", "0.1")
    assert linear.main(argv) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "r" / "linear" / "tiny-resnet__voc2007.json").read_text())
    assert record["metric"] == "voc11_map" and record["ece"] is None
    assert "ECE: n/a" in out
    backbone = load_backbone("tiny-resnet", models_dir)
    trainval, test = (
        load_split("voc2007", "trainval", data_root),
        load_split("voc2007", "test", data_root),
    )
    x, xt = direct_features(backbone, trainval), direct_features(backbone, test)
    from sklearn.metrics import precision_recall_curve

    aps = []
    clf = LogisticRegression(solver="lbfgs", warm_start=True, C=0.1 * 2)  # see transfer/logreg.py
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for cls in range(trainval.targets.shape[1]):
            clf.fit(x, trainval.targets[:, cls])
            precision, recall, _ = precision_recall_curve(
                test.targets[:, cls], clf.decision_function(xt)
            )
            aps.append(
                np.mean(
                    [
                        precision[recall >= t].max() if (recall >= t).any() else 0
                        for t in np.linspace(0, 1, 11)
                    ]
                )
            )
    assert record["score"] == pytest.approx(100 * np.mean(aps), abs=1e-6)


def test_missing_dataset_is_a_clear_error(models_dir, tmp_path, capsys):
    code = linear.main(
        [
            "-d",
            "dtd",
            "-m",
            "tiny-resnet",
            "--models-dir",
            str(models_dir),
            "--data-root",
            str(tmp_path),
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and str(tmp_path / "DTD") in err
