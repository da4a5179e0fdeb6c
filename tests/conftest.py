"""Tests never download: huggingface_hub (and so timm) stays offline in every test and in the
scripts the tests start (they inherit the environment). Tests marked ``gpu`` run only where CUDA
is available (``pytest -m gpu``, or ``benchmarks/gpu_check.py``); elsewhere they are reported as
skipped."""

import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"


def pytest_collection_modifyitems(config, items) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run benchmarks/gpu_check.py on one)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
