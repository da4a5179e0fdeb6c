"""Every dataset reader against its fixture in the official layout, plus bad-data errors."""

import math
import shutil

import numpy as np
import pytest
import torch

from datasets import DatasetError, ImageDataset, get_dataset_spec, load_split, random_val_indices
from tests.fixtures.dataset_layouts import (
    FIXTURE_DATASETS,
    FOLDERS,
    expected_layout,
    load_options,
    write_layout,
)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for name in FIXTURE_DATASETS:
        write_layout(name, root)
    return root


def _load(name, split, root, **extra):
    return load_split(name, split, root, **{**load_options(name, root), **extra})


def _official_name(name, part):
    """Which load_split split returns the official part ``part`` unchanged."""
    spec = get_dataset_spec(name)
    if spec.few_shot_only:
        return "fewshot"
    if part == "train" and not spec.predefined_val:
        return "trainval"
    return part


@pytest.mark.parametrize("name", FIXTURE_DATASETS)
def test_official_parts_match_the_files(name, data_root):
    truth = expected_layout(name)
    for part in truth.parts:
        split = _load(name, _official_name(name, part), data_root)
        assert split.classes == truth.classes
        assert split.keys == truth.keys(part)
        np.testing.assert_array_equal(split.targets, truth.targets(part))
        assert split.multilabel is (name == "voc2007")
        assert split.targets.dtype == (np.uint8 if name == "voc2007" else np.int64)


@pytest.mark.parametrize("name", FIXTURE_DATASETS)
def test_derived_splits_follow_spec(name, data_root):
    spec = get_dataset_spec(name)
    truth = expected_layout(name)
    if spec.few_shot_only:
        assert _load(name, "fewshot", data_root).keys == truth.keys("train")
        return
    splits = {s: _load(name, s, data_root) for s in spec.splits}
    if spec.predefined_val:
        assert splits["train"].keys == truth.keys("train")
        assert splits["val"].keys == truth.keys("val")
        assert splits["trainval"].keys == truth.keys("train") + truth.keys("val")
        pooled = truth.keys("train") + truth.keys("val") + truth.keys("test")
    else:
        official = truth.keys("train")
        rng_indices = np.arange(len(official))
        np.random.RandomState(0).shuffle(rng_indices)
        n_val = math.floor(0.2 * len(official))
        assert splits["val"].keys == [official[i] for i in rng_indices[:n_val]]
        assert splits["train"].keys == [official[i] for i in rng_indices[n_val:]]
        assert splits["trainval"].keys == official
        pooled = official + truth.keys("test")
    assert splits["test"].keys == truth.keys("test")
    if "fewshot" in spec.splits:
        assert splits["fewshot"].keys == pooled
        assert splits["fewshot"].identity != splits["test"].identity


@pytest.mark.parametrize("name", FIXTURE_DATASETS)
def test_images_open_as_rgb_and_show_the_class_pattern(name, data_root):
    split = _load(name, "fewshot" if name != "voc2007" else "train", data_root)
    first, last = split.load_image(0), split.load_image(len(split) - 1)
    assert first.mode == "RGB" and last.mode == "RGB"
    expected_size = {"cifar10": (32, 32), "cifar100": (32, 32), "chestx": (256, 256)}
    assert first.size == expected_size.get(name, (16, 12))
    if name not in ("chestx", "voc2007"):
        # Two images of different classes look different.
        other = next(i for i in range(len(split)) if split.targets[i] != split.targets[0])
        assert not np.array_equal(np.asarray(first), np.asarray(split.load_image(other)))


def test_voc_difficult_counts_as_negative(data_root):
    split = _load("voc2007", "train", data_root)
    main = data_root / "VOC2007" / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main"
    rows = [line.split() for line in (main / "bird_train.txt").read_text().splitlines()]
    raw = np.array([int(value) for _, value in rows])
    assert set(raw) == {-1, 0, 1}
    np.testing.assert_array_equal(split.targets[:, split.classes.index("bird")], raw == 1)
    dataset = ImageDataset(split)
    assert dataset[0][1].dtype == torch.float32 and dataset[0][1].shape == (20,)


def test_identity_does_not_depend_on_the_data_root(data_root, tmp_path):
    copy = tmp_path / "elsewhere"
    shutil.copytree(data_root / "DTD", copy / "DTD")
    assert _load("dtd", "test", data_root).identity == _load("dtd", "test", copy).identity


def test_aircraft_classes_are_sorted_not_variants_txt_order(data_root):
    split = _load("aircraft", "train", data_root)
    listed = (data_root / "Aircraft" / "data" / "variants.txt").read_text().split("\n")[:3]
    assert split.classes == sorted(listed) != listed


def test_sun397_uses_the_exact_folder(data_root):
    split = _load("sun397", "trainval", data_root)
    barn = [k for k, t in zip(split.keys, split.targets, strict=True) if "/barn/" in k]
    assert barn and all(split.classes[t] == "barn" for t in split.targets[
        [split.keys.index(k) for k in barn]])  # fmt: skip


def test_chestx_keeps_single_used_findings(data_root):
    split = _load("chestx", "fewshot", data_root)
    lines = (data_root / "ChestX" / "Data_Entry_2017.csv").read_text().splitlines()[1:]
    kept = [line.split(",")[:2] for line in lines]
    used = {"Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule",
            "Pneumothorax"}  # fmt: skip
    expected = [f"images/{name}" for name, findings in kept if findings in used]
    assert split.keys == expected and len(expected) < len(kept)


def test_caltech101_default_uses_the_shipped_split_files(tmp_path):
    write_layout("caltech101", tmp_path, caltech_full_split=True)
    truth = expected_layout("caltech101", caltech_full_split=True)
    train = load_split("caltech101", "trainval", tmp_path)
    test = load_split("caltech101", "test", tmp_path)
    assert (len(train), len(test), len(train.classes)) == (2416, 6728, 102)
    assert train.classes[0] == "BACKGROUND_Google"
    assert train.keys == truth.keys("train")
    np.testing.assert_array_equal(test.targets, truth.targets("test"))


def _copy(data_root, tmp_path, name):
    shutil.copytree(data_root / FOLDERS[name], tmp_path / FOLDERS[name])
    return tmp_path


def test_missing_folder_names_path_layout_and_source(tmp_path):
    with pytest.raises(DatasetError) as error:
        load_split("dtd", "train", tmp_path)
    message = str(error.value)
    assert str(tmp_path / "DTD") in message
    assert "labels/{train,val,test}1.txt" in message and "robots.ox.ac.uk" in message


def test_missing_list_file_names_it(data_root, tmp_path):
    root = _copy(data_root, tmp_path, "pets")
    (root / "Pets" / "annotations" / "test.txt").unlink()
    with pytest.raises(DatasetError, match=r"missing file .*Pets/annotations/test\.txt"):
        _load("pets", "test", root)


def test_cifar_missing_batch_without_download_names_it(data_root, tmp_path):
    root = _copy(data_root, tmp_path, "cifar10")
    (root / "CIFAR10" / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_split("cifar10", "train", root, download=False)


def test_label_out_of_range_names_the_file(data_root, tmp_path):
    root = _copy(data_root, tmp_path, "caltech101")
    splits = root / "Caltech101" / "fixture-splits" / "test.txt"
    lines = splits.read_text().splitlines()
    lines[0] = lines[0].rsplit(" ", 1)[0] + " 7"
    splits.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"fixture-splits/test\.txt: label 7 .* out of range"):
        _load("caltech101", "test", root)
    root = _copy(data_root, tmp_path / "b", "cars")
    meta = root / "Cars" / "devkit" / "cars_meta.mat"
    from scipy.io import savemat

    names = np.empty((1, 2), dtype=object)
    names[0, :] = ["a", "b"]
    savemat(meta, {"class_names": names})  # 2 names, but labels go up to 3
    with pytest.raises(DatasetError, match=r"cars_train_annos\.mat: label 2 out of range"):
        _load("cars", "train", root)


def test_empty_class_names_the_file(data_root, tmp_path):
    root = _copy(data_root, tmp_path, "dtd")
    labels = root / "DTD" / "labels" / "val1.txt"
    kept = [line for line in labels.read_text().splitlines() if not line.startswith("blotchy")]
    labels.write_text("\n".join(kept) + "\n")
    with pytest.raises(DatasetError, match=r"val1\.txt: no images for class\(es\) blotchy"):
        _load("dtd", "val", root)


def test_unreadable_image_errors_or_is_skipped(data_root, tmp_path, caplog):
    root = _copy(data_root, tmp_path, "eurosat")
    split = _load("eurosat", "fewshot", root)
    broken = root / "EuroSAT" / split.keys[1]
    broken.write_bytes(b"not an image at all")
    truncated = root / "EuroSAT" / split.keys[4]
    truncated.write_bytes(truncated.read_bytes()[:40])
    with pytest.raises(DatasetError, match=f"cannot read image .*{broken.name}"):
        split.load_image(1)
    kept = _load("eurosat", "fewshot", root, skip_broken=True)
    assert "eurosat/fewshot: skipped 2 unreadable image(s)" in caplog.text
    assert kept.keys == [k for i, k in enumerate(split.keys) if i not in (1, 4)]
    np.testing.assert_array_equal(kept.targets, np.delete(split.targets, [1, 4]))


def test_voc_class_files_must_agree(data_root, tmp_path):
    root = _copy(data_root, tmp_path, "voc2007")
    path = root / "VOC2007" / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main" / "dog_val.txt"
    path.write_text("\n".join(path.read_text().splitlines()[1:]) + "\n")
    with pytest.raises(DatasetError, match="dog_val.txt lists other image ids"):
        _load("voc2007", "val", root)


def test_val_split_is_a_fifth_of_the_official_train(data_root):
    split = _load("cifar100", "trainval", data_root)
    train_idx, val_idx = random_val_indices(len(split))
    assert len(val_idx) == len(split) // 5
    assert _load("cifar100", "val", data_root).keys == [split.keys[i] for i in val_idx]


def _original_food_val(meta):
    """The original's rule, written out: samples class by class in classes.txt order, images
    as listed in train.json; val = the first fifth of a seed-0 shuffled index list."""
    import json

    classes = (meta / "classes.txt").read_text().splitlines()
    listing = json.loads((meta / "train.json").read_text())
    samples = [(f"food-101/images/{i}.jpg", label)
               for label, name in enumerate(classes) for i in listing[name]]  # fmt: skip
    indices = list(range(len(samples)))
    state = np.random.get_state()
    np.random.seed(0)
    np.random.shuffle(indices)
    np.random.set_state(state)
    return [samples[i] for i in indices[: int(np.floor(0.2 * len(samples)))]]


def test_food_orders_samples_by_classes_txt_not_json_keys(tmp_path):
    import json

    folder = write_layout("food", tmp_path, per_class=5)
    meta = folder / "food-101" / "meta"
    listing = json.loads((meta / "train.json").read_text())
    # Keys in reverse classes.txt order, and a class's images not sorted: as on the real files.
    listing = {name: ids[::-1] if name == "baklava" else ids for name, ids in listing.items()}
    reordered = dict(reversed(list(listing.items())))
    assert list(reordered) != (meta / "classes.txt").read_text().splitlines()
    (meta / "train.json").write_text(json.dumps(reordered))
    val = _load("food", "val", tmp_path)
    expected = _original_food_val(meta)
    assert list(zip(val.keys, val.targets.tolist(), strict=True)) == expected
    assert val.classes == (meta / "classes.txt").read_text().splitlines()
    trainval = _load("food", "trainval", tmp_path)
    assert trainval.keys[:5] == [f"food-101/images/{i}.jpg" for i in listing["apple_pie"]]
