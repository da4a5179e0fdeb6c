"""PPM and UPerNet: the toolkit's layout (parameter names), output resolution, inference."""

from __future__ import annotations

import torch

from transfer.dense.decoders import PPM, DenseModel, UPerNet, class_probabilities


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
