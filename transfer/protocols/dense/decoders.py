"""The two decoders of docs/protocols.md, "Dense prediction": PSP pyramid pooling (surface normals)
and UPerNet (segmentation), with the MIT CSAIL toolkit's architecture and parameter names.
``tests/transfer/protocols/dense/test_decoders.py`` checks this against the toolkit's PPM and
UPerNet (written out from ``mit_semseg/models/models.py`` of
CSAILVision/semantic-segmentation-pytorch):
the same state dict loads strictly into both, and the outputs are identical, in eval and in train
mode (the toolkit's log_softmax for training and upsample + softmax for inference applied to
ours), as are the BatchNorm running statistics after a training step. The toolkit's BatchNorm is
its ``SynchronizedBatchNorm2d``, whose momentum is 0.001 rather than torch's 0.1, hence
``BN_MOMENTUM``; its extra buffers ``_tmp_running_*`` / ``_running_iter`` are not kept. Under the
toolkit's own multi-GPU DataParallel those buffers give the running statistics a bias-corrected
start (the same long-run average); we use torch's SyncBatchNorm update instead.

Written here instead of imported from PyPI's ``mit-semseg`` 1.0.0: installing it pulls
``opencv-python`` (a large wheel the package never imports) and ``yacs``; its data loader module
fails to import on torch 2 (``torch._six``), its parallel helpers use ``collections.Mapping``
(gone since Python 3.10), and its ``TrainDataset`` reports a fake length of 1e10 (unusable with a
sampler) and hard-codes ImageNet normalisation (wrong for simclr). What would remain are these
two small modules.

Both return per-pixel logits at the resolution of the finest stage they read; the caller applies
``log_softmax`` + NLL for training and bilinear upsampling + ``softmax`` for inference, as the
toolkit does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from transfer.protocols.dense.encoder import STAGE_CHANNELS

POOL_SCALES = (1, 2, 3, 6)
PPM_CHANNELS = 512
# The toolkit's SynchronizedBatchNorm2d default (mit_semseg/lib/nn/modules/batchnorm.py): running
# statistics average over ~1000 iterations, not torch's ~10.
BN_MOMENTUM = 0.001


def conv3x3_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
        nn.ReLU(inplace=True),
    )


def conv1x1_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
        nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
        nn.ReLU(inplace=True),
    )


def init_decoder_weights(module: nn.Module) -> None:
    """The toolkit's initialisation: Kaiming-normal convolutions, BN weight 1 and bias 1e-4."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.constant_(m.bias, 1e-4)


def upsample(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class PPM(nn.Module):
    """Pyramid pooling on layer4: average pools at scales 1, 2, 3, 6 (512 channels each),
    concatenated with layer4, then 3x3 conv 512 + BN + ReLU + dropout 0.1 + 1x1 classifier."""

    def __init__(self, num_class: int, fc_dim: int = STAGE_CHANNELS[-1],
                 pool_scales: tuple[int, ...] = POOL_SCALES) -> None:
        super().__init__()
        self.ppm = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(scale), *conv1x1_bn_relu(fc_dim, PPM_CHANNELS))
            for scale in pool_scales
        )
        self.conv_last = nn.Sequential(
            *conv3x3_bn_relu(fc_dim + len(pool_scales) * PPM_CHANNELS, PPM_CHANNELS),
            nn.Dropout2d(0.1),
            nn.Conv2d(PPM_CHANNELS, num_class, kernel_size=1),
        )
        init_decoder_weights(self)

    def forward(self, stages: list[torch.Tensor]) -> torch.Tensor:
        top = stages[-1]
        pooled = [upsample(branch(top), top.shape[2:]) for branch in self.ppm]
        return self.conv_last(torch.cat([top, *pooled], 1))


class UPerNet(nn.Module):
    """UPerNet (toolkit variant ``upernet``, fpn_dim 512): a pyramid pooling module on layer4,
    a top-down FPN over layer1..layer3, all levels upsampled to layer1's size and fused."""

    def __init__(self, num_class: int, fc_dim: int = STAGE_CHANNELS[-1],
                 pool_scales: tuple[int, ...] = POOL_SCALES,
                 fpn_inplanes: tuple[int, ...] = STAGE_CHANNELS, fpn_dim: int = 512) -> None:
        super().__init__()
        self.ppm_pooling = nn.ModuleList(nn.AdaptiveAvgPool2d(scale) for scale in pool_scales)
        self.ppm_conv = nn.ModuleList(
            conv1x1_bn_relu(fc_dim, PPM_CHANNELS) for _ in pool_scales)
        self.ppm_last_conv = conv3x3_bn_relu(fc_dim + len(pool_scales) * PPM_CHANNELS, fpn_dim)
        self.fpn_in = nn.ModuleList(conv1x1_bn_relu(c, fpn_dim) for c in fpn_inplanes[:-1])
        self.fpn_out = nn.ModuleList(
            nn.Sequential(conv3x3_bn_relu(fpn_dim, fpn_dim)) for _ in fpn_inplanes[:-1])
        self.conv_last = nn.Sequential(
            conv3x3_bn_relu(len(fpn_inplanes) * fpn_dim, fpn_dim),
            nn.Conv2d(fpn_dim, num_class, kernel_size=1),
        )
        init_decoder_weights(self)

    def forward(self, stages: list[torch.Tensor]) -> torch.Tensor:
        top = stages[-1]
        # As in the toolkit: pool, upsample, then the 1x1 conv (not conv before upsampling).
        pooled = [conv(upsample(pool(top), top.shape[2:]))
                  for pool, conv in zip(self.ppm_pooling, self.ppm_conv, strict=True)]
        f = self.ppm_last_conv(torch.cat([top, *pooled], 1))
        levels = [f]
        for i in reversed(range(len(stages) - 1)):
            lateral = self.fpn_in[i](stages[i])
            f = lateral + upsample(f, lateral.shape[2:])
            levels.append(self.fpn_out[i](f))
        levels.reverse()  # finest first
        size = levels[0].shape[2:]
        fused = torch.cat([levels[0], *(upsample(level, size) for level in levels[1:])], 1)
        return self.conv_last(fused)


class DenseModel(nn.Module):
    """Encoder + decoder: ``forward(images)`` gives logits at the decoder's resolution."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(images))


def class_probabilities(model: nn.Module, images: list[torch.Tensor],
                        size: tuple[int, int]) -> torch.Tensor:
    """Multi-scale inference as in the toolkit: for each resized image, logits upsampled to
    ``size`` then softmax; the mean over scales. Returns (1, classes, H, W)."""
    total = None
    for image in images:
        probs = F.softmax(upsample(model(image), size), dim=1)
        total = probs if total is None else total + probs
    return total / len(images)
