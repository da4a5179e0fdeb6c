"""The 28 detectron2 configs: generated, not drifted, and holding the detection recipe's fields."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import yaml

from tests.fixtures.detectron2_scripts import REPO, load_script

CONFIG_DIR = REPO / "detectron2-configs"
PAPER_MODELS = [
    "insdis", "moco-v1", "pcl-v1", "pirl", "pcl-v2", "simclr-v1", "moco-v2", "simclr-v2",
    "sela-v2", "infomin", "byol", "deepcluster-v2", "swav", "supervised",
]  # fmt: skip
UNNORMALIZED = {"simclr-v1", "simclr-v2"}  # their inputs stay in [0, 1]
CASES = [(mode, model) for mode in ("frozen", "finetune") for model in PAPER_MODELS]


@pytest.fixture(scope="module")
def generator():
    return load_script("detectron2-configs/generate_configs.py")


def load(mode: str, model: str) -> dict:
    return yaml.safe_load((CONFIG_DIR / mode / f"{model}.yaml").read_text())


def yacs_value(value):
    """What detectron2's yacs makes of a YAML string: a Python literal where it parses as one."""
    try:
        return ast.literal_eval(value) if isinstance(value, str) else value
    except (ValueError, SyntaxError):
        return value


def test_committed_configs_equal_generated(generator) -> None:
    expected = generator.expected_configs()
    assert len(expected) == 28
    for path, text in expected.items():
        assert path.read_text() == text, (
            f"{path} is stale: run detectron2-configs/generate_configs.py"
        )
    committed = {p for mode in ("frozen", "finetune") for p in (CONFIG_DIR / mode).glob("*.yaml")}
    assert committed == set(expected)
    assert generator.main(["--check"]) == 0


def test_check_reports_a_stale_file(generator, tmp_path: Path, monkeypatch, capsys) -> None:
    for mode in ("frozen", "finetune"):
        (tmp_path / mode).mkdir()
        for model in PAPER_MODELS:
            src = CONFIG_DIR / mode / f"{model}.yaml"
            (tmp_path / mode / src.name).write_text(src.read_text())
    (tmp_path / "frozen" / "byol.yaml").write_text("MODEL: {}\n")
    monkeypatch.setattr(generator, "HERE", tmp_path)
    monkeypatch.setattr(generator, "REPO", tmp_path)
    assert generator.main(["--check"]) == 1
    assert capsys.readouterr().out.strip() == "stale: frozen/byol.yaml"
    assert generator.main([]) == 0
    assert (tmp_path / "frozen" / "byol.yaml").read_text() == (
        CONFIG_DIR / "frozen" / "byol.yaml"
    ).read_text()


@pytest.mark.parametrize(("mode", "model"), CASES)
def test_fields(mode: str, model: str) -> None:
    cfg = load(mode, model)
    m = cfg["MODEL"]
    assert cfg["_BASE_"] == "../../../detectron2/configs/Base-RCNN-FPN.yaml"
    assert m["WEIGHTS"] == f"../../ssl-transfer/models/detectron2/{model}.pkl"
    if model in UNNORMALIZED:
        assert m["PIXEL_MEAN"] == [0.0, 0.0, 0.0]
        assert m["PIXEL_STD"] == [255.0, 255.0, 255.0]
    else:
        assert m["PIXEL_MEAN"] == [123.675, 116.280, 103.530]
        assert m["PIXEL_STD"] == [58.395, 57.120, 57.375]
    assert m["MASK_ON"] is False
    assert m["BACKBONE"] == {"FREEZE_AT": 4 if mode == "frozen" else 0}
    assert m["RESNETS"] == {"DEPTH": 50, "STRIDE_IN_1X1": False}
    assert m["ROI_HEADS"] == {"NUM_CLASSES": 20}
    i = cfg["INPUT"]
    assert i["FORMAT"] == "RGB"
    assert yacs_value(i["MIN_SIZE_TRAIN"]) == tuple(range(480, 801, 32))
    assert i["MIN_SIZE_TEST"] == 800
    assert yacs_value(cfg["DATASETS"]["TRAIN"]) == ("voc_2007_trainval", "voc_2012_trainval")
    assert yacs_value(cfg["DATASETS"]["TEST"]) == ("voc_2007_test",)
    s = cfg["SOLVER"]
    assert s["BASE_LR"] == 0.0025
    assert s["IMS_PER_BATCH"] == 2
    assert yacs_value(s["STEPS"]) == (96000, 128000)
    assert s["MAX_ITER"] == 144000
    assert s["WARMUP_ITERS"] == 100
    assert set(cfg) == {"_BASE_", "MODEL", "INPUT", "DATASETS", "SOLVER"}


def test_paths_resolve_in_the_readme_layout(tmp_path: Path) -> None:
    """detectron2 joins _BASE_ to the config's folder and MODEL.WEIGHTS to the working directory
    (detectron2/tools); with both repositories side by side they reach the real files."""
    (tmp_path / "detectron2" / "configs").mkdir(parents=True)
    base = tmp_path / "detectron2" / "configs" / "Base-RCNN-FPN.yaml"
    base.write_text("MODEL: {}\n")
    pkl = tmp_path / "ssl-transfer" / "models" / "detectron2" / "byol.pkl"
    pkl.parent.mkdir(parents=True)
    pkl.write_bytes(b"")
    config = tmp_path / "ssl-transfer" / "detectron2-configs" / "frozen" / "byol.yaml"
    config.parent.mkdir(parents=True)
    config.write_text((CONFIG_DIR / "frozen" / "byol.yaml").read_text())
    tools = tmp_path / "detectron2" / "tools"
    tools.mkdir()

    config_arg = "../../ssl-transfer/detectron2-configs/frozen/byol.yaml"  # README command
    config_path = os.path.normpath(tools / config_arg)
    assert Path(config_path) == config
    cfg = load("frozen", "byol")
    assert Path(os.path.normpath(os.path.join(os.path.dirname(config_path), cfg["_BASE_"]))) == base
    assert Path(os.path.normpath(tools / cfg["MODEL"]["WEIGHTS"])) == pkl
