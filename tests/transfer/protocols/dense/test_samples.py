"""Training batches and evaluation items in the toolkit's geometry, labels with -1 = ignore."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.fixtures.dense_data import make_ade20k, make_nyuv2
from transfer.protocols.dense.ade20k import read_odgt
from transfer.protocols.dense.normals import load_codebook
from transfer.protocols.dense.nyuv2 import prepare, read_split
from transfer.protocols.dense.samples import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DenseDataError,
    EvalImages,
    Geometry,
    TrainBatches,
    decode_label,
    resized_size,
)


@pytest.fixture(scope="module")
def ade(tmp_path_factory) -> Path:
    return make_ade20k(tmp_path_factory.mktemp("data"), n_train=6, n_val=2, num_class=5)


def test_decode_label() -> None:
    raw = np.array([[0, 1, 150], [255, 3, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(decode_label(raw, "ade20k"), [[-1, 0, 149], [254, 2, -1]])
    np.testing.assert_array_equal(decode_label(raw, "nyuv2"), [[0, 1, 150], [-1, 3, 0]])


def test_resized_size_caps_the_long_side() -> None:
    assert resized_size(640, 480, 300, 1000) == (400, 300)
    assert resized_size(3000, 500, 600, 1000) == (1000, 166)


def test_train_batches_geometry_and_labels(ade: Path) -> None:
    records = read_odgt(ade / "training.odgt", ade)
    dataset = TrainBatches(records, Geometry((32, 40), 64, 32, 4), batch_per_gpu=2,
                           encoding="ade20k", normalize=False, random_flip=False, seed=5)
    plan = dataset.plan(0)
    members = [i for batch in plan for i in batch]
    assert len(plan) == 2 and len(set(members)) == 4  # 3 portrait + 3 landscape: one of each left
    for batch in plan:
        assert len({records[i].height > records[i].width for i in batch}) == 1
    item = dataset[(0, 0)]
    images, labels = item["images"], item["labels"]
    assert images.shape[0] == 2 and images.shape[2] % 32 == 0 and images.shape[3] % 32 == 0
    assert labels.shape == (2, images.shape[2] // 4, images.shape[3] // 4)
    # the first image: resized and compared with a direct PIL computation
    record = records[plan[0][0]]
    for scale in (32, 40):
        w, h = resized_size(record.width, record.height, scale, 64)
        expected = np.asarray(Image.open(record.image).convert("RGB").resize((w, h),
                              Image.Resampling.BILINEAR), dtype=np.float32) / 255
        got = images[0, :, :h, :w].permute(1, 2, 0).numpy()
        if got.shape == expected.shape and np.allclose(got, expected, atol=1e-6):
            break
    else:
        pytest.fail("the first image is not the bilinear resize at either scale")
    assert torch.all(images[0, :, h:, :] == 0) and torch.all(images[0, :, :, w:] == 0)
    raw = Image.open(record.label).resize((w, h), Image.Resampling.NEAREST)
    # PIL's nearest downsampling (the toolkit's) takes each 4x4 block's pixel (2, 2)
    expected_label = decode_label(np.asarray(raw), "ade20k")[2::4, 2::4]
    got_label = labels[0, : expected_label.shape[0], : expected_label.shape[1]].numpy()
    np.testing.assert_array_equal(got_label, expected_label)
    assert torch.all(labels[0, -(-h // 4):, :] == -1)


def test_normalisation_and_keys_per_rank(ade: Path) -> None:
    records = read_odgt(ade / "training.odgt", ade)
    plain = TrainBatches(records, Geometry((32,), 64, 32, 4), 1, "ade20k", normalize=False)
    normed = TrainBatches(records, Geometry((32,), 64, 32, 4), 1, "ade20k", normalize=True)
    a, b = plain[(0, 0)]["images"], normed[(0, 0)]["images"]
    record = records[plain.plan(0)[0][0]]
    w, h = resized_size(record.width, record.height, 32, 64)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(b[0, :, :h, :w], (a[0, :, :h, :w] - mean) / std)
    keys = [plain.keys(1, rank, 4) for rank in range(4)]
    assert all(len(k) == len(keys[0]) for k in keys)
    flat = [key for k in keys for key in k]
    assert len(set(flat)) == len(flat) == len(plain.plan(1)) // 4 * 4
    assert plain.plan(1) != plain.plan(0) or len(records) < 3


def test_eval_items_and_missing_files(ade: Path, tmp_path: Path) -> None:
    records = read_odgt(ade / "validation.odgt", ade)
    item = EvalImages(records, Geometry((32, 48), 64, 32), "ade20k")[0]
    for image, short in zip(item["images"], (32, 48), strict=True):
        w, h = resized_size(records[0].width, records[0].height, short, 64)
        assert image.shape == (1, 3, -(-h // 32) * 32, -(-w // 32) * 32)
    raw = np.asarray(Image.open(records[0].label))
    np.testing.assert_array_equal(item["label"].numpy(), raw.astype(np.int64) - 1)
    with pytest.raises(DenseDataError, match="no ADE20K list"):
        read_odgt(tmp_path / "absent.odgt", tmp_path)
    broken = tmp_path / "broken.odgt"
    broken.write_text('{"fpath_img": "a.jpg"}\n')
    with pytest.raises(DenseDataError, match="line 1"):
        read_odgt(broken, tmp_path)
    gone = EvalImages([records[0].__class__(tmp_path / "x.jpg", tmp_path / "x.png", 4, 4, "x")],
                      Geometry((32,), 64, 32), "ade20k")
    with pytest.raises(DenseDataError, match="missing file"):
        gone[0]


def test_prepare_nyuv2_labels_and_normals(tmp_path: Path) -> None:
    root = make_nyuv2(tmp_path, n_train=2, n_test=1, size=(12, 10))
    codebook = load_codebook()
    assert list(prepare(root, codebook)) == ["000001", "000002", "000003"]
    record = read_split(root, "test")[0]
    with gzip.open(root / "surfacenormal_metadata" / "all_normals.pklz", "rb") as handle:
        data = pickle.load(handle)
    normals, valid = data["all_normals"][2], data["all_valid_depth_masks"][2] > 0
    labels = np.asarray(Image.open(record.label))
    nearest = np.argmin(((normals[..., None, :] - codebook) ** 2).sum(-1), axis=-1)
    np.testing.assert_array_equal(labels[valid], nearest[valid])
    assert np.all(labels[~valid] == 255)
    with np.load(record.normals) as saved:
        np.testing.assert_array_equal(saved["normals"], normals)
        np.testing.assert_array_equal(saved["valid"], valid)
    with pytest.raises(DenseDataError, match="no NYUv2 split list"):
        read_split(tmp_path / "nowhere", "train")
