"""A converted backbone under detectron2 computes what torchvision's trunk computes: res2..res5 of
the model our config builds, with the pickle convert_to_detectron2.py writes, equal layer1..layer4
of torchvision's resnet50 holding the same state dict, for the same image (1e-5 relative).

This holds the key renaming (a swapped tensor of the same shape loads silently) and the configs'
PIXEL_MEAN / PIXEL_STD / INPUT.FORMAT (detectron2 normalises the 0..255 image itself) together.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from models.detectron2 import convert_checkpoint
from tests.fixtures.checkpoints import write_common_checkpoint
from tests.fixtures.detectron2_features import (
    STAGES,
    detectron2_stages,
    relative_error,
    sample_image,
    torchvision_stages,
)
from tests.fixtures.detectron2_scripts import REPO
from tests.fixtures.detectron2_shim import NOT_INSTALLED, import_detectron2
from tests.fixtures.detectron2_voc import write_base_config
from transfer.protocols.detection_configs import with_base

pytestmark = pytest.mark.detectron2
if import_detectron2() is None:
    pytest.skip(NOT_INSTALLED, allow_module_level=True)


@pytest.mark.parametrize(("mode", "model"), [
    ("frozen", "byol"), ("finetune", "byol"), ("finetune", "simclr-v1"),
])  # fmt: skip
def test_detectron2_stages_equal_torchvision_layers(tmp_path: Path, mode: str, model: str) -> None:
    saved = write_common_checkpoint(tmp_path / "models" / f"{model}.pth", seed=7)
    pkl = convert_checkpoint(tmp_path / "models" / f"{model}.pth", tmp_path / f"{model}.pkl")
    base = write_base_config(tmp_path / "detectron2")
    config = with_base(REPO / "detectron2-configs" / mode / f"{model}.yaml", base, tmp_path)
    image = sample_image()

    ours = detectron2_stages(config, pkl, image)
    reference = torchvision_stages(saved, image, model)
    for stage in STAGES:
        assert ours[stage].shape == reference[stage].shape, stage
        error = relative_error(ours[stage], reference[stage])
        assert error < 1e-5, f"{mode}/{model} {stage}: relative error {error:.2e}"
