"""PPM and UPerNet: the toolkit's layout (parameter names), output resolution, inference."""

from __future__ import annotations

import pytest
import torch

from tests.fixtures.threads import one_torch_thread  # noqa: F401 (autouse)
from transfer.protocols.dense.decoders import PPM, DenseModel, UPerNet, class_probabilities


def stages(batch: int = 2, size: int = 16, dilated: bool = False) -> list[torch.Tensor]:
    sizes = (size, size // 2, size // 2, size // 2) if dilated else (
        size, size // 2, size // 4, size // 8)
    return [torch.randn(batch, c, s, s) for c, s in zip((256, 512, 1024, 2048), sizes,
                                                       strict=True)]


def test_ppm_layout_and_output() -> None:
    ppm = PPM(num_class=40).eval()
    keys = set(ppm.state_dict())
    # names in the MIT CSAIL toolkit's PPM (pool at index 0, conv 1, BN 2; classifier last)
    for key in ("ppm.0.1.weight", "ppm.3.2.running_var", "conv_last.0.weight",
                "conv_last.1.weight", "conv_last.4.weight", "conv_last.4.bias"):
        assert key in keys
    assert ppm.conv_last[0].in_channels == 2048 + 4 * 512
    assert [m[0].output_size for m in ppm.ppm] == [1, 2, 3, 6]
    assert isinstance(ppm.conv_last[3], torch.nn.Dropout2d) and ppm.conv_last[3].p == 0.1
    out = ppm(stages(dilated=True))
    assert out.shape == (2, 40, 8, 8)


def test_upernet_layout_and_output() -> None:
    net = UPerNet(num_class=150).eval()
    keys = set(net.state_dict())
    for key in ("ppm_conv.0.0.weight", "ppm_last_conv.0.weight", "fpn_in.2.0.weight",
                "fpn_out.0.0.0.weight", "conv_last.0.0.weight", "conv_last.1.bias"):
        assert key in keys
    assert net.conv_last[1].in_channels == 512
    out = net(stages(size=16))
    assert out.shape == (2, 150, 16, 16)  # layer1's resolution: stride 4


def test_batchnorm_initialisation() -> None:
    bn = UPerNet(num_class=3).fpn_in[0][1]
    assert torch.all(bn.weight == 1) and torch.allclose(bn.bias, torch.full_like(bn.bias, 1e-4))


def test_class_probabilities_average_softmax_over_scales() -> None:
    torch.manual_seed(0)
    model = DenseModel(torch.nn.Conv2d(3, 5, 1), torch.nn.Identity()).eval()
    small, large = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        probs = class_probabilities(model, [small, large], (8, 8))
        up = torch.nn.functional.interpolate(model(small), size=(8, 8), mode="bilinear",
                                             align_corners=False)
        expected = (up.softmax(1) + model(large).softmax(1)) / 2
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 8, 8))


# --- The toolkit's reference modules, for the "identical outputs" claim of decoders.py.
# Written for this test from the PPM and UPerNet classes of CSAILVision/
# semantic-segmentation-pytorch, mit_semseg/models/models.py at commit
# 5d695f9726b3c56598f4d372443d90a008ffc2d0 (the code behind mit-semseg 1.0.0): same module
# tree (so the state dicts share names), same forward, including the log_softmax of training
# and the upsample + softmax of inference (use_softmax). The toolkit's SynchronizedBatchNorm2d
# runs F.batch_norm with its default momentum 0.001 on one process (mit_semseg/lib/nn/modules/
# batchnorm.py, as shipped in linusericsson/ssl-transfer at commit 31997e7):
# nn.BatchNorm2d(momentum=0.001) stands in for it.


def _reference_bn(channels: int) -> torch.nn.Module:
    return torch.nn.BatchNorm2d(channels, eps=1e-5, momentum=0.001)


def _reference_cbr(cin: int, cout: int, kernel: int) -> list[torch.nn.Module]:
    return [torch.nn.Conv2d(cin, cout, kernel_size=kernel, padding=kernel // 2, bias=False),
            _reference_bn(cout), torch.nn.ReLU(inplace=True)]  # fmt: skip


def _reference_head(x, use_softmax, seg_size):
    F = torch.nn.functional
    if use_softmax:
        return F.softmax(F.interpolate(x, size=seg_size, mode="bilinear", align_corners=False), 1)
    return F.log_softmax(x, dim=1)


class ReferencePPM(torch.nn.Module):
    def __init__(self, num_class, fc_dim=2048, use_softmax=False, pool_scales=(1, 2, 3, 6)):
        super().__init__()
        self.use_softmax = use_softmax
        self.ppm = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(s), *_reference_cbr(fc_dim, 512, 1))
            for s in pool_scales)  # fmt: skip
        self.conv_last = torch.nn.Sequential(
            *_reference_cbr(fc_dim + len(pool_scales) * 512, 512, 3), torch.nn.Dropout2d(0.1),
            torch.nn.Conv2d(512, num_class, kernel_size=1))  # fmt: skip

    def forward(self, conv_out, segSize=None):  # noqa: N803 (the toolkit's name)
        conv5 = conv_out[-1]
        size = conv5.size()[2:]
        ppm_out = [conv5] + [torch.nn.functional.interpolate(
            p(conv5), size, mode="bilinear", align_corners=False) for p in self.ppm]  # fmt: skip
        return _reference_head(self.conv_last(torch.cat(ppm_out, 1)), self.use_softmax, segSize)


class ReferenceUPerNet(torch.nn.Module):
    def __init__(self, num_class, fc_dim=2048, use_softmax=False, pool_scales=(1, 2, 3, 6),
                 fpn_inplanes=(256, 512, 1024, 2048), fpn_dim=512):  # fmt: skip
        super().__init__()
        self.use_softmax = use_softmax
        self.ppm_pooling = torch.nn.ModuleList(torch.nn.AdaptiveAvgPool2d(s) for s in pool_scales)
        self.ppm_conv = torch.nn.ModuleList(
            torch.nn.Sequential(*_reference_cbr(fc_dim, 512, 1)) for _ in pool_scales)
        self.ppm_last_conv = torch.nn.Sequential(
            *_reference_cbr(fc_dim + len(pool_scales) * 512, fpn_dim, 3))
        self.fpn_in = torch.nn.ModuleList(
            torch.nn.Sequential(*_reference_cbr(c, fpn_dim, 1)) for c in fpn_inplanes[:-1])
        self.fpn_out = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Sequential(*_reference_cbr(fpn_dim, fpn_dim, 3)))
            for _ in fpn_inplanes[:-1])  # fmt: skip
        self.conv_last = torch.nn.Sequential(
            torch.nn.Sequential(*_reference_cbr(len(fpn_inplanes) * fpn_dim, fpn_dim, 3)),
            torch.nn.Conv2d(fpn_dim, num_class, kernel_size=1))  # fmt: skip

    def forward(self, conv_out, segSize=None):  # noqa: N803 (the toolkit's name)
        interpolate = torch.nn.functional.interpolate
        conv5 = conv_out[-1]
        size = conv5.size()[2:]
        ppm_out = [conv5]
        for pool_scale, pool_conv in zip(self.ppm_pooling, self.ppm_conv, strict=True):
            ppm_out.append(pool_conv(interpolate(pool_scale(conv5), size, mode="bilinear",
                                                 align_corners=False)))  # fmt: skip
        f = self.ppm_last_conv(torch.cat(ppm_out, 1))
        fpn_feature_list = [f]
        for i in reversed(range(len(conv_out) - 1)):
            conv_x = self.fpn_in[i](conv_out[i])
            f = conv_x + interpolate(f, size=conv_x.size()[2:], mode="bilinear",
                                     align_corners=False)  # fmt: skip
            fpn_feature_list.append(self.fpn_out[i](f))
        fpn_feature_list.reverse()
        output_size = fpn_feature_list[0].size()[2:]
        fusion = [fpn_feature_list[0]] + [
            interpolate(x, output_size, mode="bilinear", align_corners=False)
            for x in fpn_feature_list[1:]]  # fmt: skip
        x = self.conv_last(torch.cat(fusion, 1))
        return _reference_head(x, self.use_softmax, segSize)


def _randomise_batchnorm(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial BN statistics and affine parameters, so a swapped tensor would show."""
    generator = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            for tensor, low, high in ((m.weight.data, 0.5, 1.5), (m.bias.data, -0.2, 0.2),
                                      (m.running_mean, -0.2, 0.2), (m.running_var, 0.5, 2.0)):
                tensor.copy_(low + (high - low) * torch.rand(tensor.shape, generator=generator))


@pytest.mark.parametrize(("ours", "reference", "dilated"), [
    (PPM, ReferencePPM, True), (UPerNet, ReferenceUPerNet, False)])  # fmt: skip
def test_outputs_equal_the_toolkits_modules(ours, reference, dilated) -> None:
    torch.manual_seed(0)
    net = ours(num_class=7)
    _randomise_batchnorm(net, seed=1)
    inputs = stages(batch=2, size=24, dilated=dilated)
    label_size = (inputs[0].shape[2] * 4, inputs[0].shape[3] * 4)
    toolkit = reference(num_class=7)
    toolkit.load_state_dict(net.state_dict(), strict=True)  # the same names and shapes
    toolkit_infer = reference(num_class=7, use_softmax=True)
    toolkit_infer.load_state_dict(net.state_dict(), strict=True)
    for mode in ("eval", "train"):  # train: BN on batch statistics, the same dropout draws
        for module in (net, toolkit, toolkit_infer):
            module.train(mode == "train")
        with torch.no_grad():
            torch.manual_seed(2)
            logits = net(inputs)
            torch.manual_seed(2)
            training_output = toolkit(inputs)
        # the running statistics move alike (in train mode both were updated once)
        for key, value in net.state_dict().items():
            torch.testing.assert_close(value, toolkit.state_dict()[key], rtol=0, atol=0,
                                       msg=key)  # fmt: skip
        with torch.no_grad():
            torch.manual_seed(2)
            inference_output = toolkit_infer(inputs, segSize=label_size)
        # training: the toolkit's log_softmax of the same logits (ours leaves it to the loss)
        torch.testing.assert_close(torch.log_softmax(logits, 1), training_output, rtol=0, atol=0)
        # inference: class_probabilities' upsample + softmax of the same logits
        model = DenseModel(torch.nn.Identity(), net)
        with torch.no_grad():
            torch.manual_seed(2)
            probabilities = class_probabilities(model, [inputs], label_size)
        torch.testing.assert_close(probabilities, inference_output, rtol=0, atol=0)
