"""Our configs + converted weights in real detectron2: model builds, the backbone loads in full
with nothing unused, the freeze setting holds, and two training iterations run on a tiny VOC.
Marked ``detectron2`` (``pytest -m detectron2``); skipped, saying why, without detectron2."""

from __future__ import annotations

import logging
import math
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from tests.fixtures.checkpoints import write_common_checkpoint
from tests.fixtures.detectron2_scripts import REPO, load_script
from tests.fixtures.detectron2_shim import NOT_INSTALLED, import_detectron2
from tests.fixtures.detectron2_voc import write_base_config, write_tiny_voc

pytestmark = pytest.mark.detectron2
if import_detectron2() is None:
    pytest.skip(NOT_INSTALLED, allow_module_level=True)

from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import DatasetCatalog, build_detection_train_loader  # noqa: E402
from detectron2.data.datasets import register_pascal_voc  # noqa: E402
from detectron2.engine import SimpleTrainer  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.solver import build_optimizer  # noqa: E402

FROZEN_STAGES = {"frozen": ("stem", "res2", "res3", "res4"), "finetune": ()}


def readme_layout(tmp_path: Path, mode: str, model: str) -> Path:
    """detectron2/ beside ssl-transfer/ as the README has it; returns detectron2/tools."""
    checkout = tmp_path / "detectron2"
    write_base_config(checkout)
    (checkout / "tools").mkdir()
    repo = tmp_path / "ssl-transfer"
    config = repo / "detectron2-configs" / mode / f"{model}.yaml"
    config.parent.mkdir(parents=True)
    shutil.copy(REPO / "detectron2-configs" / mode / f"{model}.yaml", config)
    write_common_checkpoint(repo / "models" / f"{model}.pth", seed=5)
    convert = load_script("convert_to_detectron2.py")
    assert convert.main(["--models", model, "--models-dir", str(repo / "models")]) == 0
    return checkout / "tools"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["frozen", "finetune"])
def test_config_loads_weights_and_trains(tmp_path: Path, monkeypatch, caplog, mode: str) -> None:
    torch.manual_seed(0)
    tools = readme_layout(tmp_path, mode, "byol")
    monkeypatch.chdir(tools)
    cfg = get_cfg()
    cfg.merge_from_file(f"../../ssl-transfer/detectron2-configs/{mode}/byol.yaml")

    names = []
    for year in (2007, 2012):
        name = f"ssl_transfer_tiny_voc_{year}_{mode}"
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
        ids = [f"{year}_{i:06d}" for i in range(4)]
        register_pascal_voc(name, str(write_tiny_voc(tmp_path / f"VOC{year}", ids)), "trainval",
                            year)  # fmt: skip
        names.append(name)
    cfg.DATASETS.TRAIN = tuple(names)
    cfg.MODEL.DEVICE = "cpu"
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.INPUT.MIN_SIZE_TRAIN = (64,)
    cfg.INPUT.MAX_SIZE_TRAIN = 96
    cfg.OUTPUT_DIR = str(tmp_path / "output")

    model = build_model(cfg)
    with caplog.at_level(logging.INFO):
        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)  # relative to detectron2/tools
    # a clean load: nothing of the pickle unused (no num_batches_tracked), no backbone key missing;
    # the only warning lists the FPN and heads, which start untrained
    assert "Loading from ../../ssl-transfer/models/detectron2/byol.pkl" in caplog.text
    assert "matched with submodule backbone.bottom_up - Total num: 53" in caplog.text
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "not found in the checkpoint" in warnings[0], warnings
    assert "bottom_up" not in warnings[0] and "roi_heads.box_predictor" in warnings[0]
    assert "not used by the model" not in caplog.text
    assert "num_batches_tracked" not in caplog.text
    with open(tmp_path / "ssl-transfer/models/detectron2/byol.pkl", "rb") as f:
        converted = pickle.load(f)["model"]
    backbone = model.backbone.bottom_up.state_dict()
    assert len(backbone) == 265  # 53 convs + 53 FrozenBN x 4 buffers (no num_batches_tracked)
    for key, value in backbone.items():
        assert key in converted, f"{key} has no converted tensor"
        torch.testing.assert_close(value, torch.as_tensor(converted[key]), rtol=0, atol=0)

    for name, param in model.backbone.bottom_up.named_parameters():
        frozen = name.split(".")[0] in FROZEN_STAGES[mode]
        assert param.requires_grad is not frozen, name
    assert cfg.MODEL.PIXEL_MEAN == [123.675, 116.280, 103.530]
    assert cfg.INPUT.FORMAT == "RGB"

    trainer = SimpleTrainer(model, build_detection_train_loader(cfg), build_optimizer(cfg, model))
    trainer.train(0, 2)
    losses = trainer.storage.history("total_loss").values()
    assert len(losses) == 2 and all(math.isfinite(loss) for loss, _ in losses)


@pytest.mark.slow
def test_check_configs_reports_unloaded_backbone_tensor(tmp_path: Path, capsys) -> None:
    tools = readme_layout(tmp_path, "frozen", "byol")
    models_dir = tmp_path / "ssl-transfer" / "models"
    check = load_script("detectron2-configs/check_configs.py")
    argv = ["--detectron2", str(tools.parent), "--models", "byol", "--models-dir", str(models_dir)]
    assert check.main(argv) == 0
    assert "ok   frozen/byol" in capsys.readouterr().out

    pkl = models_dir / "detectron2" / "byol.pkl"
    payload = pickle.loads(pkl.read_bytes())
    del payload["model"]["res4.3.conv2.weight"]
    pkl.write_bytes(pickle.dumps(payload))
    assert check.main(argv) == 1
    out = capsys.readouterr().out
    assert "FAIL frozen/byol: 1 backbone tensor(s) not loaded: res4.3.conv2.weight" in out
