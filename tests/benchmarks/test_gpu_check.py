"""benchmarks/gpu_check.py without a GPU: the CPU-safe parts run at --quick sizes, every row
carries a ratio against its baseline, and the output says that the GPU parts were skipped."""

from __future__ import annotations

import re

import pytest
import torch

from benchmarks import gpu_check


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU mode")
def test_quick_run_on_the_cpu_prints_the_table_and_what_was_skipped(capsys):
    assert gpu_check.main(["--device", "cpu", "--quick", "--workers", "0"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0] == "| check | setting | baseline | ours | ratio |"
    checks = [row.split(" | ")[0].lstrip("| ") for row in rows[1:]]
    assert checks == ["feature extraction img/s"] * 3 + ["linear C search + refit"] + [
        "few-shot"] * 2 + ["finetune steps/s"] * 2
    for row in rows[1:]:
        assert re.search(r"\| \d+(\.\d+)?x(?: closer)? \|$", row), row  # a ratio on every row
    assert "ours fp32" in out and "ours tf32" in out and "ours bf16" in out
    assert "note: no CUDA GPU here" in out and "pytest -m gpu" in out
    assert "multi-GPU dense checkpoint path" in out


def test_cuda_without_a_gpu_is_a_clear_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert gpu_check.main(["--device", "cuda"]) == 2
    assert "no CUDA GPU is visible" in capsys.readouterr().err
