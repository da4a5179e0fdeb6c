"""Datasets of the transfer benchmark: registry, on-disk readers, the split rule, transforms."""

from datasets.errors import DatasetError
from datasets.image_dataset import ImageDataset
from datasets.registry import DATASETS, DatasetSpec, default_data_root, get_dataset_spec
from datasets.splits import Split, load_split, random_val_indices
from datasets.transforms import (
    build_transform,
    eval_transform,
    few_shot_transform,
    train_transform,
    transform_id,
)

__all__ = [
    "DATASETS",
    "DatasetError",
    "DatasetSpec",
    "ImageDataset",
    "Split",
    "build_transform",
    "default_data_root",
    "eval_transform",
    "few_shot_transform",
    "get_dataset_spec",
    "load_split",
    "random_val_indices",
    "train_transform",
    "transform_id",
]
