"""check_configs.py and generate_configs.py --detectron2 under real detectron2: all 28 configs
build and load converted checkpoints of the 14 names with no backbone tensor left unloaded, and
configs written for another layout (a symlinked checkout) load from any working directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from models.detectron2 import read_detectron2_checkpoint
from tests.fixtures.checkpoints import write_common_checkpoint
from tests.fixtures.detectron2_scripts import load_script
from tests.fixtures.detectron2_shim import NOT_INSTALLED, import_detectron2
from tests.fixtures.detectron2_voc import write_base_config
from transfer.protocols.detection_configs import unloaded_backbone_tensors

pytestmark = pytest.mark.detectron2
if import_detectron2() is None:
    pytest.skip(NOT_INSTALLED, allow_module_level=True)

PAPER_MODELS = [
    "insdis", "moco-v1", "pcl-v1", "pirl", "pcl-v2", "simclr-v1", "moco-v2", "simclr-v2",
    "sela-v2", "infomin", "byol", "deepcluster-v2", "swav", "supervised",
]  # fmt: skip


def test_all_28_configs_load_converted_checkpoints(tmp_path: Path, capsys) -> None:
    models = tmp_path / "models"
    write_common_checkpoint(models / "byol.pth", seed=11)
    convert = load_script("convert_to_detectron2.py")
    assert convert.main(["--models", "byol", "--models-dir", str(models)]) == 0
    pickles = models / "detectron2"
    # the same converted weights under every name: hard links, where 14 conversions would write
    # 1.4 GB of the same bytes
    for name in PAPER_MODELS:
        if name != "byol":
            os.link(pickles / "byol.pkl", pickles / f"{name}.pkl")
    checkout = write_base_config(tmp_path / "detectron2").parent.parent
    capsys.readouterr()

    check = load_script("detectron2-configs/check_configs.py")
    assert check.main(["--detectron2", str(checkout), "--models-dir", str(models)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sorted(out[:-1]) == sorted(f"ok   {mode}/{name}" for mode in ("frozen", "finetune")
                                      for name in PAPER_MODELS)  # fmt: skip
    assert out[-1] == "28 config(s) checked, 0 with unloaded backbone tensors"


def test_configs_for_a_symlinked_checkout_load_from_anywhere(tmp_path: Path, monkeypatch,
                                                             capsys) -> None:  # fmt: skip
    """A symlinked detectron2/ breaks the committed relative paths; configs regenerated with
    --detectron2 name absolute files, so train_net.py finds them from any working directory."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    real = write_base_config(tmp_path / "elsewhere" / "detectron2").parent.parent
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "detectron2").symlink_to(real, target_is_directory=True)
    models = tmp_path / "models"
    write_common_checkpoint(models / "swav.pth", seed=2)
    assert load_script("convert_to_detectron2.py").main(
        ["--models", "swav", "--models-dir", str(models)]) == 0  # fmt: skip
    out = tmp_path / "configs"
    generate = load_script("detectron2-configs/generate_configs.py")
    argv = ["--detectron2", str(tmp_path / "work" / "detectron2"), "--models-dir", str(models),
            "--out", str(out)]  # fmt: skip
    assert generate.main(argv) == 0
    assert generate.main([*argv, "--check"]) == 0

    monkeypatch.chdir(tmp_path)  # neither detectron2/tools nor the repository
    cfg = get_cfg()
    cfg.merge_from_file(str(out / "finetune" / "swav.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    assert Path(cfg.MODEL.WEIGHTS) == models / "detectron2" / "swav.pkl"
    assert cfg.MODEL.BACKBONE.FREEZE_AT == 0 and cfg.MODEL.ROI_HEADS.NUM_CLASSES == 20
    model = build_model(cfg)
    capsys.readouterr()
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    converted = read_detectron2_checkpoint(cfg.MODEL.WEIGHTS)
    assert unloaded_backbone_tensors(model, converted) == []
