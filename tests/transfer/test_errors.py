"""transfer/errors.py: one base class for every error the scripts report, and worker errors
that keep only their own message."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import datasets
import models
import transfer
from datasets import DatasetError
from transfer.errors import TransferError


def _project_error_classes():
    for package in (datasets, models, transfer):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if (inspect.isclass(value) and issubclass(value, Exception)
                        and value.__module__ == module.__name__):
                    yield name, value


def test_every_error_class_of_the_project_is_a_transfer_error():
    """The scripts catch TransferError only: a new error class outside it would be a traceback."""
    classes = dict(_project_error_classes())
    assert {"DatasetError", "ModelError", "LogregError", "EpisodeError", "FinetuneError",
            "DeviceError", "SweepError", "ReportError", "WriteError"} <= set(classes)
    assert [name for name, cls in classes.items() if not issubclass(cls, TransferError)] == []


class _Broken(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        if index == 2:
            raise DatasetError("cannot read image /data/x.jpg: image file is truncated\nline 2")
        return torch.zeros(1)


def test_an_error_raised_again_from_a_dataloader_worker_keeps_its_own_message():
    with pytest.raises(DatasetError) as caught:
        list(DataLoader(_Broken(), batch_size=1, num_workers=1))
    assert str(caught.value) == "cannot read image /data/x.jpg: image file is truncated\nline 2"


def test_an_ordinary_message_is_left_alone():
    message = "Original Traceback is only special after a newline"
    assert str(TransferError(message)) == message
    assert str(TransferError("a", "b")) == "('a', 'b')"
