"""The ResNet-50 encoder of the dense tasks: torchvision layout, loaded strictly from the common
format, returning the outputs of its four stages (strides 4, 8, 16, 32, or 4, 8, 8, 8 dilated).

The MIT CSAIL toolkit's own ResNet-50 has a deep 3-conv stem; loading torchvision-layout weights
into it with ``strict=False`` leaves it random (docs/protocols.md, "Dense prediction"). Here the
encoder's state dict keys ARE the common format's keys, so ``load_state_dict(strict=True)`` either
copies every tensor or fails.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from models.backbone import Backbone
from models.errors import ModelError
from models.loader import load_backbone
from models.resolve import RANDOM, resolve_model

STAGE_CHANNELS = (256, 512, 1024, 2048)


class ResNetStages(nn.Module):
    """A torchvision ResNet-50 without ``avgpool``/``fc`` whose forward returns its four stages.

    ``dilated``: layer3 and layer4 keep stride 1 with dilation 2 and 4 (output stride 8), which is
    exactly the toolkit's ``_nostride_dilate(dilate_scale=8)``. ``frozen``: no parameter trains
    and every BatchNorm stays in eval mode, whatever ``train()`` is asked.
    """

    def __init__(self, dilated: bool = False, frozen: bool = False) -> None:
        super().__init__()
        net = torchvision.models.resnet50(
            weights=None, replace_stride_with_dilation=[False, dilated, dilated])
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1, net.layer2, net.layer3, net.layer4)
        self.dilated = dilated
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True) -> ResNetStages:
        return super().train(mode and not self.frozen)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        stages = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            stages.append(x)
        return stages


def load_encoder(weights: str | Path, models_dir: str | Path | None = None,
                 dilated: bool = False, frozen: bool = False) -> tuple[ResNetStages, Backbone]:
    """Build the encoder and copy ``models/<name>.pth`` into it strictly.

    Returns the encoder and the loaded ``Backbone`` (its ``name``, ``normalize`` and
    ``identity`` describe the weights; the trunk itself is not kept).
    """
    ref = resolve_model(str(weights), models_dir)
    ref.require_resnet50("dense prediction (surface normals, segmentation)")
    if ref.kind == RANDOM:
        raise ModelError("the dense tasks evaluate pretrained weights; 'random' is not one")
    backbone = load_backbone(str(weights), models_dir)
    encoder = ResNetStages(dilated=dilated, frozen=frozen)
    state = {k: v for k, v in backbone.trunk.state_dict().items() if not k.startswith("fc.")}
    encoder.load_state_dict(state, strict=True)
    return encoder, backbone
