"""The 14 generated segmentation configs, the config reader, and the training schedule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml

from tests.fixtures.detectron2_scripts import REPO, load_script
from transfer.protocols.dense.segmentation_task import ConfigError, load_config
from transfer.protocols.dense.train_loop import Schedule, parameter_groups, poly_factor

CONFIG_DIR = REPO / "semantic-segmentation" / "selfsupconfig"
PAPER_MODELS = [
    "insdis", "moco-v1", "pcl-v1", "pirl", "pcl-v2", "simclr-v1", "moco-v2", "simclr-v2",
    "sela-v2", "infomin", "byol", "deepcluster-v2", "swav", "supervised",
]  # fmt: skip


@pytest.fixture(scope="module")
def generator():
    return load_script("semantic-segmentation/generate_configs.py")


def test_committed_configs_equal_generated(generator) -> None:
    expected = generator.expected_configs()
    assert {p.stem for p in expected} == set(PAPER_MODELS)
    for path, text in expected.items():
        assert path.read_text() == text, f"{path} is stale: run generate_configs.py"
    assert set(CONFIG_DIR.glob("*.yaml")) == set(expected)
    assert generator.main(["--check"]) == 0


@pytest.mark.parametrize("model", PAPER_MODELS)
def test_recipe_fields(model: str, tmp_path: Path) -> None:
    raw = yaml.safe_load((CONFIG_DIR / f"{model}.yaml").read_text())
    assert raw["MODEL"]["weights_encoder"] == f"{{models_dir}}/{model}.pth"
    config = load_config(CONFIG_DIR / f"{model}.yaml", data_root=tmp_path, models_dir=tmp_path)
    d, m, t = config["DATASET"], config["MODEL"], config["TRAIN"]
    assert d["imgSizes"] == (300, 375, 450, 525, 600) and d["imgMaxSize"] == 1000
    assert (d["num_class"], d["padding_constant"], d["segm_downsampling_rate"]) == (150, 32, 4)
    assert d["random_flip"] is True and d["root_dataset"] == str(tmp_path / "ADE20K")
    assert (m["arch_encoder"], m["arch_decoder"]) == ("resnet50", "upernet")
    assert m["weights_encoder"] == str(tmp_path / f"{model}.pth")
    assert (t["lr_encoder"], t["lr_decoder"], t["lr_pow"], t["beta1"]) == (0.02, 0.02, 0.9, 0.9)
    assert float(t["weight_decay"]) == 1e-4
    assert (t["batch_size_per_gpu"], t["num_epoch"], t["epoch_iters"]) == (2, 30, 5000)
    assert config["VAL"]["checkpoint"] == "epoch_30.pth"


def test_overrides_and_errors(tmp_path: Path) -> None:
    cfg = CONFIG_DIR / "byol.yaml"
    config = load_config(cfg, ["TRAIN.epoch_iters", "2", "DATASET.imgSizes", "(32, 48)",
                               "DIR", str(tmp_path / "ck")])
    assert config["TRAIN"]["epoch_iters"] == 2 and config["DATASET"]["imgSizes"] == (32, 48)
    assert config["DIR"] == str(tmp_path / "ck")
    with pytest.raises(ConfigError, match="unknown key TRAIN.epochs"):
        load_config(cfg, ["TRAIN.epochs", "3"])
    with pytest.raises(ConfigError, match="arch_decoder is 'ppm_deepsup'"):
        load_config(cfg, ["MODEL.arch_decoder", "ppm_deepsup"])
    with pytest.raises(ConfigError, match="KEY VALUE pairs"):
        load_config(cfg, ["TRAIN.seed"])
    with pytest.raises(ConfigError, match="no config file"):
        load_config(tmp_path / "none.yaml")


@pytest.mark.parametrize(("overrides", "section", "message"), [
    ([], {"TRAIN": {"deep_sup_scale": 0.4}}, "TRAIN.deep_sup_scale is not supported: it weights"),
    ([], {"TEST": {"checkpoint": "epoch_30.pth", "result": "./"}},
     "TEST is not supported: it configures the toolkit's test.py"),
    (["TRAIN.deep_sup_scale", "0.4"], {}, "TRAIN.deep_sup_scale is not supported"),
    (["TRAIN.start_epoch", "3"], {}, "TRAIN.start_epoch is 3; training here resumes by itself"),
    (["VAL.visualize", "True"], {}, "VAL.visualize is True; saving coloured predictions"),
    (["TRAIN.disp_iter", "0"], {}, "TRAIN.disp_iter is 0; it is the number of iterations"),
])  # fmt: skip
def test_toolkit_keys_without_meaning_here_are_refused(overrides, section, message,
                                                       tmp_path: Path) -> None:
    """Keys the toolkit reads but this recipe would not act on: an error naming the key, never
    silently ignored (the original's configs carried deep_sup_scale and TEST)."""
    raw = yaml.safe_load((CONFIG_DIR / "byol.yaml").read_text())
    for name, values in section.items():
        raw.setdefault(name, {}).update(values)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path, overrides, data_root=tmp_path, models_dir=tmp_path)
    # their defaults are the values this recipe implements
    config = load_config(CONFIG_DIR / "byol.yaml", data_root=tmp_path, models_dir=tmp_path)
    assert (config["TRAIN"]["start_epoch"], config["VAL"]["visualize"]) == (0, False)
    assert config["TRAIN"]["disp_iter"] == 20 and "TEST" not in config


def test_poly_schedule_and_weight_decay_groups() -> None:
    schedule = Schedule(epoch_iters=10, num_epoch=3)
    assert poly_factor(schedule, 0) == 1.0
    assert poly_factor(schedule, 15) == pytest.approx(0.5 ** 0.9)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                torch.nn.Conv2d(4, 2, 1, bias=True))
    model[0].weight.requires_grad_(False)
    decay, no_decay = parameter_groups(model, 1e-4, 0.02)
    assert [id(p) for p in decay["params"]] == [id(model[2].weight)]
    assert {id(p) for p in no_decay["params"]} == {
        id(model[0].bias), id(model[1].weight), id(model[1].bias), id(model[2].bias)}
    assert (decay["weight_decay"], no_decay["weight_decay"], decay["base_lr"]) == (1e-4, 0.0, 0.02)
