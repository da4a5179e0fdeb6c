"""timm models through every feature protocol's script, end to end and offline: linear.py,
few_shot.py and finetune.py on digits and on a fixture dataset (knn.py on the fixture), sweep.py
(a misspelt name; its timm cells run in tests/fixtures/sweep_grid.py), report.py, and the clear
errors of the ResNet-50-only protocols."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

import few_shot
import finetune as finetune_script
import knn
import linear
import report as report_script
import sweep as sweep_script
from tests.fixtures.dataset_layouts import write_layout
from tests.fixtures.timm_tiny import (
    CONVNEXT,
    EFFICIENTNET,
    RESNET,
    VIT,
    save_weights,
    seeded_state_dict,
)
from transfer.protocols.dense.encoder import load_encoder

REPO = Path(__file__).resolve().parents[2]
FILES = {VIT: "vit.safetensors", RESNET: "resnet.pth", CONVNEXT: "convnext.bin"}


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory) -> dict[str, Path]:
    """One file per tiny architecture, each in another accepted format."""
    folder = tmp_path_factory.mktemp("weights")
    files = {}
    for seed, (arch, name) in enumerate(FILES.items()):
        state = seeded_state_dict(arch, seed=seed)
        if arch == RESNET:  # a training checkpoint: wrapped, saved from DataParallel
            state = {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 90}
        files[arch] = save_weights(state, folder / name)
    return files


def _places(tmp_path) -> list[str]:
    return ["--data-root", str(tmp_path / "data"), "--results-dir", str(tmp_path / "r"),
            "--device", "cpu", "--workers", "0"]


def _finetune(argv: list[str], capsys) -> tuple[int, str]:
    """finetune.py's main in this process (its process boundary is not what is tested here):
    (exit status, stderr)."""
    capsys.readouterr()
    code = finetune_script.main(argv)
    return code, capsys.readouterr().err


def _result(path: Path) -> Path:
    """``path``, or the one file a run with non-default settings (``-i 32``, ``-w 2``, ...) wrote
    beside it: ``<model>__<dataset>[__<suffix>]__<settings>.json`` (transfer/records/results.py)."""
    if path.exists():
        return path
    (found,) = path.parent.glob(f"{path.stem}__*{path.suffix}")
    return found


def _read(path: Path) -> dict:
    return json.loads(_result(path).read_text())


@pytest.mark.slow
def test_linear_on_digits_records_the_backbone_and_reruns_from_the_cache(weight_files, tmp_path,
                                                                         capsys):
    """The acceptance commands: --random-init, then --weights FILE; offline, cached."""
    argv = ["--dataset", "digits", "--model", f"timm:{VIT}", "-i", "16", "-w", "2",
            "--cache-dir", str(tmp_path / "f"), *_places(tmp_path)]
    assert linear.main([*argv, "--random-init"]) == 0
    path = tmp_path / "r" / "linear" / f"timm-{VIT}+random-init__digits.json"
    record = _read(path)
    assert f"Final accuracy for timm-{VIT}+random-init on digits" in capsys.readouterr().out
    backbone = record["backbone"]
    assert backbone["architecture"] == f"timm:{VIT}.r160_in1k"
    assert (backbone["weights"], backbone["weights_sha256"]) == ("random-init-seed0", None)
    assert (backbone["pool"], backbone["layers"], backbone["preprocess"]) == ("default", 1,
                                                                              "paper")
    assert backbone["feature_dim"] == 64 and record["image_size"] == 16
    assert record["transform_id"] == "eval-16-norm-mean0.5_0.5_0.5-std0.5_0.5_0.5"
    assert not record["features_cached"]

    assert linear.main([*argv, "--random-init"]) == 0
    again = _read(path)
    assert again["features_cached"] and again["score"] == record["score"]

    weights = weight_files[VIT]
    assert linear.main([*argv, "--weights", str(weights), "--pool", "cls+avg"]) == 0
    mine = _read(tmp_path / "r" / "linear" / f"timm-{VIT}+weights-vit+pool-cls+avg__digits.json")
    assert mine["backbone"]["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert mine["backbone"]["weights"] == str(weights) and mine["backbone"]["feature_dim"] == 128
    assert not mine["features_cached"]  # another identity: never the random-init entry
    assert len(list((tmp_path / "f").rglob("*.pt"))) == 4  # (trainval, test) x 2 backbones


@pytest.mark.slow
def test_few_shot_and_finetune_on_digits(tmp_path, capsys):
    """A model with ImageNet statistics (test_efficientnet): the paper's plain "norm" id."""
    argv = ["-d", "digits", "-m", f"timm:{EFFICIENTNET}", "--random-init", "-i", "32",
            "--cache-dir", str(tmp_path / "f"), *_places(tmp_path)]
    assert few_shot.main([*argv, "--n-way", "3", "--n-support", "2", "--n-query", "3",
                          "--iter-num", "20"]) == 0
    record = _read(tmp_path / "r" / "few_shot" / f"timm-{EFFICIENTNET}+random-init__digits__"
                                                 "3way2shot.json")
    assert record["backbone"]["feature_dim"] == 256 and record["episodes"] == 20
    assert record["transform_id"] == "fewshot-32-norm"  # ImageNet statistics
    code, err = _finetune(["-d", "digits", "-m", f"timm:{EFFICIENTNET}", "--random-init", "-i",
                           "32", "--lr", "0.01", "--wd", "0", "--steps", "2", "-b", "8", "-w",
                           "0", "--no-progress", "--device", "cpu", "--results-dir",
                           str(tmp_path / "r")], capsys)
    assert code == 0, err[-3000:]
    final = _read(tmp_path / "r" / "finetune" / f"timm-{EFFICIENTNET}+random-init__digits__"
                                                "lr0.01_wd0.json")
    assert final["n_eval"] == 597
    assert final["backbone"]["architecture"] == f"timm:{EFFICIENTNET}.r160_in1k"
    assert final["transform_id"] == "eval-32-norm"


@pytest.mark.parametrize("arch", [VIT, RESNET, CONVNEXT])
def test_every_protocol_on_a_fixture_dataset_with_a_weights_file(arch, weight_files, tmp_path,
                                                                  capsys):
    write_layout("dtd", tmp_path / "data", per_class=5)
    weights = weight_files[arch]
    model = ["-m", f"timm:{arch}", "--weights", str(weights), "-i", "32"]
    label = f"timm-{arch}+weights-{weights.stem}"
    cached = ["--cache-dir", str(tmp_path / "f"), *_places(tmp_path)]
    assert linear.main(["-d", "dtd", *model, "-w", "3", *cached]) == 0
    assert few_shot.main(["-d", "dtd", *model, "--n-way", "3", "--n-support", "1",
                          "--n-query", "3", "--iter-num", "10", *cached]) == 0
    assert knn.main(["-d", "dtd", *model, "--k", "1", "3", *cached]) == 0
    code, err = _finetune(["-d", "dtd", *model, "--lr", "0.01", "--wd", "0.0001", "--steps",
                           "1", "-b", "4", "-w", "0", "--no-progress", "--device", "cpu",
                           "--data-root", str(tmp_path / "data"), "--results-dir",
                           str(tmp_path / "r")], capsys)
    assert code == 0, err[-3000:]
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    knn_record = _read(tmp_path / "r" / "knn" / f"{label}__dtd.json")
    assert knn_record["features_cached"]  # linear.py's trainval and test entries, reused
    for path in (tmp_path / "r" / "linear" / f"{label}__dtd.json",
                 tmp_path / "r" / "knn" / f"{label}__dtd.json",
                 tmp_path / "r" / "few_shot" / f"{label}__dtd__3way1shot.json",
                 tmp_path / "r" / "finetune" / f"{label}__dtd__lr0.01_wd0.0001.json"):
        record = _read(path)
        assert record["model"] == label and record["backbone"]["weights_sha256"] == digest


@pytest.mark.parametrize(("script", "argv", "message"), [
    (linear, ["-m", "random", "--pool", "avg"], "--pool apply to timm: models only"),
    (few_shot, ["-m", "random", "--weights", "w.pth"], "--weights apply to timm: models only"),
    (knn, ["-m", "random", "--layers", "2"], "--layers apply to timm: models only"),
    (linear, ["-m", "timm:vit_tiny_patch16_224"],
     "no pretrained weights for timm:vit_tiny_patch16_224"),
    (few_shot, ["-m", f"timm:{VIT}", "--random-init", "-i", "20"], "multiple of its patch size"),
    (linear, ["-m", "timm:resnet5O"], "closest: resnet50"),
])
def test_bad_timm_input_is_one_clear_error(script, argv, message, tmp_path, capsys):
    assert script.main(["-d", "digits", *argv, "--cache-dir", str(tmp_path / "f"),
                        *_places(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_finetune_refuses_timm_options_for_a_resnet50(tmp_path, capsys):
    code, err = _finetune(["-d", "digits", "-m", "random", "--layers", "2", "--results-dir",
                           str(tmp_path), "--device", "cpu"], capsys)
    assert code == 2
    assert err.startswith("finetune.py: error: --layers apply to timm: models only")


@pytest.mark.slow
def test_sweep_names_the_closest_timm_model_before_running_anything(tmp_path, capsys):
    """A misspelt timm name stops the sweep before any cell starts. (That timm cells are filed
    where the scripts write them is checked on the shared real sweep of timm's test networks,
    tests/fixtures/sweep_grid.py.)"""
    argv = ["--models", "timm:resnet5O", "--datasets", "dtd", "--protocols", "linear",
            "--results-dir", str(tmp_path / "results"), "--data-root", str(tmp_path / "data"),
            "--device", "cpu", "--no-progress"]
    assert sweep_script.main(argv) == 2
    assert "closest: resnet50" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_report_tabulates_timm_models_and_correlates_them_when_given_top1(tmp_path, capsys):
    results = tmp_path / "results" / "linear"
    results.mkdir(parents=True)
    scores = {"moco-v1": 70.0, "simclr-v2": 75.0, "deepcluster-v2": 81.0,
              f"timm-{VIT}": 79.0}
    for model, score in scores.items():
        record = {"protocol": "linear", "model": model, "dataset": "pets", "metric": "accuracy",
                  "score": score}
        (results / f"{model}__pets.json").write_text(json.dumps(record))
    out = tmp_path / "report"

    def correlated_models(*extra: str) -> int:
        assert report_script.main(["--results", str(tmp_path / "results"), "--out", str(out),
                                   *extra]) == 0
        table = (out / "tables" / "linear.csv").read_text()
        assert f"timm-{VIT}" in table  # beside the paper's models, with or without top-1
        rows = (out / "tables" / "correlation.csv").read_text().splitlines()
        header = rows[0].split(",")
        row = next(r.split(",") for r in rows if r.startswith("linear / pets"))
        return int(float(row[header.index("n_models")]))

    assert correlated_models() == 3
    assert correlated_models("--imagenet-top1", f"timm:{VIT}=75.5") == 4
    capsys.readouterr()
    assert report_script.main(["--results", str(tmp_path / "results"), "--out", str(out),
                               "--imagenet-top1", "timm:x=high"]) == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err


def _normals_train():
    """surface-normal-estimation/train.py as a module (its folder name is no package name)."""
    spec = importlib.util.spec_from_file_location(
        "normals_train", REPO / "surface-normal-estimation" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dense_prediction_refuses_timm_models(tmp_path, capsys):
    with pytest.raises(Exception, match="dense prediction .* is a ResNet-50 protocol"):
        load_encoder(f"timm:{RESNET}")
    capsys.readouterr()
    assert _normals_train().main(["--weights", f"timm:{RESNET}", "--ckpt",
                                  str(tmp_path / "ckpt"), "--device", "cpu"]) == 2
    assert capsys.readouterr().err.startswith(
        "error: dense prediction (surface normals, segmentation) is a ResNet-50 protocol")
