"""transfer/device.py and transfer/precision.py: one reader of --device, one vocabulary of
--precision, and the TF32 and bf16 rules behind them."""

from __future__ import annotations

import importlib
import importlib.util

import pytest
import torch

from tests.fixtures.detectron2_scripts import REPO
from transfer.runtime.device import DeviceError, parse_device, use_device
from transfer.runtime.distributed import init_distributed
from transfer.runtime.precision import PRECISIONS, autocast, check_precision, float32_mode


def test_cpu_is_accepted_and_mps_refused_with_one_message():
    assert parse_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match="Apple MPS is not supported .*use --device cpu"):
        parse_device("mps")
    with pytest.raises(DeviceError, match="unknown device 'gpu0'"):
        parse_device("gpu0")
    with pytest.raises(DeviceError, match="not supported; expected cpu, cuda or cuda:N"):
        parse_device("meta")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without a GPU")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(DeviceError, match="no CUDA GPU is visible; use --device cpu"):
        parse_device("cuda")


@pytest.fixture
def two_fake_gpus(monkeypatch):
    """torch.cuda as seen on a 2-GPU machine, recording set_device calls."""
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", calls.append)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    return calls


def test_cuda_n_becomes_the_current_device(two_fake_gpus):
    """Without set_device, pinned-memory threads and index-less CUDA calls of a process on
    cuda:1 open a context on GPU 0."""
    use_device("cuda:1")
    assert two_fake_gpus == [1]
    context, device = init_distributed("cuda:1")  # a single process: no group
    assert (context.world_size, device, two_fake_gpus) == (1, "cuda:1", [1, 1])
    use_device("cuda")  # no index: the current device stays
    assert two_fake_gpus == [1, 1]
    with pytest.raises(DeviceError, match="only 2 CUDA GPU"):
        use_device("cuda:2")


def test_bf16_needs_native_support(monkeypatch, two_fake_gpus):
    asked = []

    def is_bf16_supported(including_emulation=True):
        asked.append(including_emulation)
        return False  # a pre-Ampere GPU: bf16 only through emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    with pytest.raises(DeviceError, match="Tesla V100 has no native bfloat16 .*--precision fp32"):
        check_precision("bf16", "cuda:0")
    assert asked == [False]  # emulation does not count
    assert check_precision("fp32", "cuda:0") is PRECISIONS["fp32"]
    assert check_precision("bf16", "cpu") is PRECISIONS["bf16"]  # CPU autocast is native
    with pytest.raises(DeviceError, match="unknown precision 'fp16'; expected one of fp32, "
                                          "tf32, bf16"):
        check_precision("fp16", "cpu")


def test_float32_mode_sets_tf32_per_precision_and_restores_it():
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn)
    before = [f.allow_tf32 for f in flags]
    try:
        for start in (False, True):
            for f in flags:
                f.allow_tf32 = start
            for name, inside in (("fp32", False), ("tf32", True), ("bf16", False)):
                with float32_mode(name):
                    assert [f.allow_tf32 for f in flags] == [inside, inside], name
                assert [f.allow_tf32 for f in flags] == [start, start]
    finally:
        for f, value in zip(flags, before, strict=True):
            f.allow_tf32 = value


def test_autocast_only_for_bf16():
    x = torch.randn(4, 4)
    for name in PRECISIONS:
        with autocast(name, "cpu"):
            assert (x @ x).dtype == (torch.bfloat16 if name == "bf16" else torch.float32)


def _load(path: str):
    """The module that parses a script's arguments: its protocol, or the script itself."""
    if "/" not in path:
        return importlib.import_module(f"transfer.protocols.{path.removesuffix('.py')}")
    spec = importlib.util.spec_from_file_location(path.replace("/", "_"), REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", ["linear.py", "few_shot.py", "finetune.py",
                                    "surface-normal-estimation/train.py"])
def test_scripts_refuse_mps_at_the_command_line(script, capsys):
    module = _load(script)
    argv = ["--device", "mps"]
    if script.startswith("surface"):
        argv += ["--weights", "x.pth", "--ckpt", "c"]
    with pytest.raises(SystemExit) as exit_info:
        module.parse_args(argv)
    assert exit_info.value.code == 2
    assert "Apple MPS is not supported" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["linear.py", "knn.py", "few_shot.py", "finetune.py"])
def test_scripts_share_the_precision_vocabulary(script, capsys):
    module = _load(script)
    for name in PRECISIONS:
        assert module.parse_args(["--precision", name]).precision == name
    with pytest.raises(SystemExit):
        module.parse_args(["--precision", "fp16"])
    assert "invalid choice: 'fp16'" in capsys.readouterr().err


def test_one_vocabulary():
    assert tuple(PRECISIONS) == ("fp32", "tf32", "bf16")
    # no private copies left
    for module in ("transfer.protocols.finetune_loop", "transfer.features.extract"):
        assert not hasattr(importlib.import_module(module), "PRECISIONS")


@pytest.mark.gpu
def test_bf16_on_this_gpu_runs_or_is_refused():
    x = torch.randn(8, 8, device="cuda")
    if torch.cuda.is_bf16_supported(including_emulation=False):
        check_precision("bf16", "cuda")
        with autocast("bf16", "cuda"):
            assert (x @ x).dtype == torch.bfloat16
    else:
        with pytest.raises(DeviceError, match="no native bfloat16"):
            check_precision("bf16", "cuda")


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_cuda_1_becomes_the_current_device():
    try:
        use_device("cuda:1")
        assert torch.cuda.current_device() == 1
    finally:
        torch.cuda.set_device(0)
