"""Tests never download: huggingface_hub (and so timm) stays offline in every test and in the
scripts the tests start (they inherit the environment). Tests marked ``gpu`` run only where CUDA
is available (``pytest -m gpu``, or ``benchmarks/gpu_check.py``); elsewhere they are reported as
skipped. Tests marked ``slurm`` run against a real one-node cluster (the ``slurm_cluster`` fixture,
``python -m pytest -m slurm``). The project's log lines show as a script shows them (INFO on
stderr) from the first test on, so a test sees the same logging alone and in the suite."""

import os

import pytest
import torch

from transfer.console import setup_console

os.environ["HF_HUB_OFFLINE"] = "1"
setup_console()

pytest_plugins = ["tests.fixtures.slurm_cluster"]


def pytest_collection_modifyitems(config, items) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run benchmarks/gpu_check.py on one)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
