"""Feature extraction (transfer/features/extract.py): the precision it runs in and what it waits
for."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from datasets import build_transform, load_split
from tests.fixtures.host_syncs import count_host_syncs
from transfer.features.extract import extract_features


class FlagSpy(nn.Module):
    """A 2048-d "backbone" (mean colour times a fixed matrix) that records, per batch, the TF32
    switches and whether autocast is on while it runs."""

    feature_dim = 2048

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 2048)
        self.seen: list[tuple[bool, bool, bool]] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen.append((torch.backends.cuda.matmul.allow_tf32,
                          torch.backends.cudnn.allow_tf32, torch.is_autocast_enabled("cpu")))
        return self.proj(images.mean(dim=(2, 3)))


@pytest.fixture
def tf32_allowed():
    """Start from TF32 allowed everywhere (what a user's script may have set)."""
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _split(n: int = 20):
    return load_split("digits", "trainval").subset(range(n), "trainval")


@pytest.mark.parametrize(("precision", "expected"), [
    ("fp32", (False, False, False)), ("tf32", (True, True, False)), ("bf16", (False, False, True)),
])
def test_each_precision_sets_tf32_and_autocast_during_extraction_only(tf32_allowed, precision,
                                                                       expected):
    spy = FlagSpy()
    split = _split()
    extract_features(spy, split, build_transform("eval", 8, True), batch_size=8, workers=0,
                     precision=precision, progress=False)
    assert spy.seen == [expected] * 3  # 20 images in batches of 8
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)


def test_flags_are_restored_when_extraction_fails(tf32_allowed):
    class Broken(FlagSpy):
        def forward(self, images):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        extract_features(Broken(), _split(), build_transform("eval", 8, True), workers=0,
                         progress=False)
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)


def test_no_host_copy_per_batch_and_features_in_order():
    spy = FlagSpy()
    split = _split(40)
    transform = build_transform("eval", 8, True)
    with count_host_syncs() as syncs:
        features = extract_features(spy, split, transform, batch_size=8, workers=0,
                                    progress=False)
    # 5 batches and no per-batch copy to the host: at most ImageDataset's targets, made once
    assert len(syncs) <= 1, syncs.calls
    images = torch.stack([transform(split.load_image(i)) for i in range(len(split))])
    with torch.no_grad():
        torch.testing.assert_close(features, spy(images))


@pytest.mark.gpu
def test_fp32_features_on_the_gpu_are_the_cpus():
    """fp32 means TF32 off: the GPU's features equal the CPU's up to float32 rounding; TF32
    (Ampere and later) moves them by far more."""
    from models.loader import load_backbone

    backbone = load_backbone("random")
    split = _split(16)
    transform = build_transform("eval", 64, True)
    cpu = extract_features(backbone, split, transform, batch_size=8, workers=0, progress=False)

    def error(precision: str) -> float:
        gpu = extract_features(backbone, split, transform, batch_size=8, device="cuda",
                               workers=0, precision=precision, progress=False)
        return float((gpu - cpu).abs().max() / cpu.abs().max())

    fp32, tf32 = error("fp32"), error("tf32")
    assert fp32 < 3e-4, fp32
    if torch.cuda.get_device_capability() >= (8, 0):
        assert tf32 > 3 * fp32, (tf32, fp32)
