"""The dataset registry: the facts per dataset (docs/protocols.md, "Datasets and splits"), lookup
errors, data root."""

from pathlib import Path

import pytest

import datasets
from datasets import DATASETS, DatasetError, default_data_root, get_dataset_spec

# docs/protocols.md, "Datasets and splits", written out independently of the registry.
SPEC_TABLE = {
    "aircraft": ("Aircraft", 100, "mean_per_class_accuracy", True),
    "caltech101": ("Caltech101", 102, "mean_per_class_accuracy", False),
    "cars": ("Cars", 196, "accuracy", False),
    "cifar10": ("CIFAR10", 10, "accuracy", False),
    "cifar100": ("CIFAR100", 100, "accuracy", False),
    "dtd": ("DTD", 47, "accuracy", True),
    "flowers": ("Flowers", 102, "mean_per_class_accuracy", True),
    "food": ("Food", 101, "accuracy", False),
    "pets": ("Pets", 37, "mean_per_class_accuracy", False),
    "sun397": ("SUN397", 397, "accuracy", False),
    "voc2007": ("VOC2007", 20, "voc11_map", True),
}
CROSS_DOMAIN = {"cropdiseases": ("CropDiseases", 38), "eurosat": ("EuroSAT", 10),
                "isic": ("ISIC", 7), "chestx": ("ChestX", 7)}  # fmt: skip


@pytest.mark.parametrize("name", list(SPEC_TABLE))
def test_many_shot_records_match_spec(name):
    folder, classes, metric, predefined_val = SPEC_TABLE[name]
    spec = get_dataset_spec(name)
    assert (spec.folder, spec.num_classes, spec.metric) == (folder, classes, metric)
    assert spec.predefined_val is predefined_val
    assert not spec.few_shot_only and not spec.demo and spec.default_image_size == 224
    assert spec.multilabel is (name == "voc2007")
    assert {"train", "val", "trainval", "test"} <= set(spec.splits)
    assert ("fewshot" in spec.splits) is (name != "voc2007")
    assert spec.download_hint and spec.layout.startswith(folder + "/")


@pytest.mark.parametrize("name", list(CROSS_DOMAIN))
def test_cross_domain_records_are_few_shot_only(name):
    spec = get_dataset_spec(name)
    assert (spec.folder, spec.num_classes) == CROSS_DOMAIN[name]
    assert spec.few_shot_only and spec.splits == ("fewshot",)


def test_digits_is_the_demo_set():
    spec = get_dataset_spec("digits")
    assert spec.demo and spec.default_image_size == 64 and spec.num_classes == 10
    assert set(DATASETS) == set(SPEC_TABLE) | set(CROSS_DOMAIN) | {"digits", "fashion-mnist"}


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'.*aircraft.*chestx"):
        get_dataset_spec("imagenet")


def test_specs_are_frozen():
    with pytest.raises(AttributeError):
        get_dataset_spec("dtd").num_classes = 3


def test_default_data_root(monkeypatch, tmp_path):
    monkeypatch.delenv("SSL_TRANSFER_DATA", raising=False)
    repo_root = Path(datasets.__file__).resolve().parent.parent
    assert default_data_root() == repo_root.parent / "data"
    monkeypatch.setenv("SSL_TRANSFER_DATA", str(tmp_path))
    assert default_data_root() == tmp_path
