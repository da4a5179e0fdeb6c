"""The split rule, Split identity / subset / opener, ImageDataset, on the digits demo set."""

import math
import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader

from datasets import DatasetError, ImageDataset, load_split, random_val_indices
from datasets.sources import ArraySource
from datasets.split import Split


@pytest.mark.parametrize("n", [0, 1, 4, 5, 7, 10, 99, 1200, 50000])
def test_val_rule_is_specs_global_seed_shuffle(n):
    # the original: indices = arange(n); np.random.seed(0); np.random.shuffle(indices)
    state = np.random.get_state()
    np.random.seed(0)
    indices = list(range(n))  # the original shuffled a Python list
    np.random.shuffle(indices)
    np.random.set_state(state)
    n_val = math.floor(0.2 * n)
    train, val = random_val_indices(n)
    assert val.tolist() == indices[:n_val]
    assert train.tolist() == indices[n_val:]


def test_val_rule_leaves_global_numpy_state_alone():
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    random_val_indices(100)
    assert np.random.rand() == expected


def test_digits_needs_no_files_and_follows_the_rule(tmp_path):
    bunch = load_digits()
    trainval = load_split("digits", "trainval", tmp_path / "nothing-here")
    test = load_split("digits", "test")
    assert len(trainval) == 1200 and len(test) == 597
    np.testing.assert_array_equal(trainval.targets, bunch.target[:1200])
    np.testing.assert_array_equal(test.targets, bunch.target[1200:])
    train, val = load_split("digits", "train"), load_split("digits", "val")
    train_idx, val_idx = random_val_indices(1200)
    assert len(val) == 240 and len(train) == 960
    assert val.keys == [trainval.keys[i] for i in val_idx]
    np.testing.assert_array_equal(train.targets, bunch.target[train_idx])
    assert set(train.keys).isdisjoint(val.keys)
    assert load_split("digits", "fewshot").keys == trainval.keys + test.keys
    pixels = np.asarray(test.load_image(5))
    expected = np.round(bunch.images[1205] * 255 / 16).astype(np.uint8)
    assert pixels.shape == (8, 8, 3)
    np.testing.assert_array_equal(pixels[..., 0], expected)
    np.testing.assert_array_equal(pixels[..., 2], expected)


def test_identity_is_content_derived():
    a, b = load_split("digits", "train"), load_split("digits", "train")
    assert a.identity == b.identity and len(a.identity) == 64
    renamed = a.subset(range(len(a)), "other-name")
    assert renamed.identity == a.identity  # the split name is not part of it
    assert a.subset(range(10), "x").identity != a.identity
    flipped = a.subset(range(len(a)), "train")
    flipped.targets = flipped.targets.copy()
    flipped.targets[0] = (flipped.targets[0] + 1) % 10
    assert flipped.identity != a.identity
    reordered = a.subset(list(range(1, len(a))) + [0], "train")
    assert reordered.identity != a.identity


def test_subset_picks_rows_in_order():
    split = load_split("digits", "test")
    sub = split.subset([5, 2, 9], "mine")
    assert sub.name == "mine" and sub.keys == [split.keys[i] for i in (5, 2, 9)]
    np.testing.assert_array_equal(sub.targets, split.targets[[5, 2, 9]])
    assert np.array_equal(np.asarray(sub.load_image(1)), np.asarray(split.load_image(2)))


def test_unknown_split_and_option_errors():
    with pytest.raises(DatasetError, match="no split 'fewshot'.*train, val, trainval, test"):
        load_split("voc2007", "fewshot")
    with pytest.raises(DatasetError, match="caltech101 only"):
        load_split("digits", "train", split_files_dir="x")
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_split("mnist", "train")


def test_mismatched_keys_and_targets_are_refused():
    with pytest.raises(DatasetError, match="2 keys but 1 targets"):
        Split("d", "s", ["a"], np.zeros(1, np.int64), ["a#0", "a#1"], False, ArraySource({}))


def test_image_dataset_and_picklable_opener_with_workers():
    split = load_split("digits", "test").subset(range(12), "test")
    opener = pickle.loads(pickle.dumps(split.opener))
    assert np.array_equal(np.asarray(opener(3)), np.asarray(split.load_image(3)))
    dataset = ImageDataset(split, lambda image: torch.from_numpy(np.asarray(image).copy()))
    loader = DataLoader(dataset, batch_size=5, num_workers=2)
    images, targets = zip(*loader, strict=True)
    assert torch.cat(targets).tolist() == split.targets.tolist()
    assert torch.cat(targets).dtype == torch.long
    assert torch.cat(images).shape == (12, 8, 8, 3)
