"""Fashion-MNIST's reader, checks, download and CLI: synthetic files in the official layout
(written by tests/fixtures/idx_files.py, independently of the reader), and Debian's real copy
where ``dataset-fashion-mnist`` is installed."""

from __future__ import annotations

import gzip
import hashlib
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from datasets import DatasetError, get_dataset_spec, load_split
from datasets import idx_files as reader
from datasets.__main__ import main
from datasets.registry import MANY_SHOT, PAPER_DATASETS
from tests.fixtures.idx_files import (
    DEBIAN_DIR,
    FOLDER,
    NAMES,
    idx_bytes,
    read_idx_gz,
    write_fashion_layout,
    write_idx_gz,
)

OFFICIAL_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                    "Sneaker", "Bag", "Ankle boot"]  # fmt: skip
debian = pytest.mark.skipif(
    not all((DEBIAN_DIR / name).is_file() for name in NAMES.values()),
    reason=f"Debian's Fashion-MNIST is not installed in {DEBIAN_DIR} "
    "(apt-get install dataset-fashion-mnist)",
)


def test_record_is_a_many_shot_set_outside_the_papers_lists():
    spec = get_dataset_spec("fashion-mnist")
    assert (spec.folder, spec.num_classes, spec.metric) == (FOLDER, 10, "accuracy")
    assert not spec.predefined_val and not spec.few_shot_only and not spec.demo
    assert spec.splits == ("train", "val", "trainval", "test", "fewshot")
    assert "fashion-mnist" not in PAPER_DATASETS and "fashion-mnist" not in MANY_SHOT
    assert len(PAPER_DATASETS) == 15


def test_splits_follow_the_official_files_and_the_20_percent_rule(tmp_path):
    parts = write_fashion_layout(tmp_path, n_train=60, n_test=20)
    (train_x, train_y), (test_x, test_y) = parts["train"], parts["test"]
    # the original's rule, written out: numpy seed 0 shuffles arange(n), the first 20% are val
    np.random.seed(0)
    order = np.arange(60)
    np.random.shuffle(order)
    expected = {"trainval": np.arange(60), "val": order[:12], "train": order[12:]}
    for name, indices in expected.items():
        split = load_split("fashion-mnist", name, tmp_path, download=False)
        assert split.classes == OFFICIAL_CLASSES
        np.testing.assert_array_equal(split.targets, train_y[indices])
        for row in (0, len(indices) - 1):
            image = split.load_image(row)
            assert image.mode == "RGB" and image.size == (28, 28)
            pixels = np.asarray(image)
            for channel in range(3):  # grey replicated
                np.testing.assert_array_equal(pixels[..., channel], train_x[indices[row]])
    test = load_split("fashion-mnist", "test", tmp_path, download=False)
    np.testing.assert_array_equal(test.targets, test_y)
    np.testing.assert_array_equal(np.asarray(test.load_image(19))[..., 1], test_x[19])
    pool = load_split("fashion-mnist", "fewshot", tmp_path, download=False)
    np.testing.assert_array_equal(pool.targets, np.concatenate([train_y, test_y]))
    np.testing.assert_array_equal(np.asarray(pool.load_image(60))[..., 2], test_x[0])


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte inside the deflate stream
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _mislabel(path: Path) -> None:
    labels = read_idx_gz(path).copy()
    labels[7] = 10
    write_idx_gz(path, labels)


def _swap(path: Path) -> None:
    path.write_bytes((path.parent / NAMES[("train", "labels")]).read_bytes())


def _short_header(path: Path) -> None:
    images = read_idx_gz(path)
    path.write_bytes(gzip.compress(idx_bytes(images)[:-28]))  # the last image's last row gone


BREAKAGES = {
    "corrupt": (_corrupt, ("train", "images"), r"corrupt or truncated gzip"),
    "truncated": (_truncate, ("train", "images"), r"corrupt or truncated gzip"),
    "mislabelled": (_mislabel, ("train", "labels"), r"label 10 out of range for 10 classes"),
    "swapped": (_swap, ("train", "images"), r"magic 00000801, expected 00000803"),
    "short": (_short_header, ("train", "images"), r"60 x 28 x 28 = 47040 bytes .* 47012"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_each_bad_file_is_one_error_naming_it(tmp_path, capsys, breakage):
    write_fashion_layout(tmp_path)
    damage, which, message = BREAKAGES[breakage]
    path = tmp_path / FOLDER / NAMES[which]
    damage(path)
    with pytest.raises(DatasetError, match=message) as raised:
        load_split("fashion-mnist", "train", tmp_path, download=False)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)
    assert main(["verify", "fashion-mnist", "--data-root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and str(path) in err


def test_image_and_label_counts_must_agree(tmp_path):
    write_fashion_layout(tmp_path)
    labels = tmp_path / FOLDER / NAMES[("test", "labels")]
    write_idx_gz(labels, read_idx_gz(labels)[:-1])
    with pytest.raises(DatasetError, match=r"holds 20 images but .*t10k-labels.* 19 labels"):
        load_split("fashion-mnist", "test", tmp_path, download=False)


def test_download_links_debians_copy(tmp_path, monkeypatch, caplog):
    fake_debian = tmp_path / "debian"
    write_fashion_layout(fake_debian)
    monkeypatch.setattr(reader, "DEBIAN_DIR", fake_debian / FOLDER)
    assert main(["download", "fashion-mnist", "--data-root", str(tmp_path / "data")]) == 0
    folder = tmp_path / "data" / FOLDER
    assert sorted(p.name for p in folder.iterdir()) == sorted(NAMES.values())
    for name in NAMES.values():
        assert (folder / name).resolve() == (fake_debian / FOLDER / name).resolve()
    assert "linked Debian's copy" in caplog.text
    # the loader links on first use too (as CIFAR downloads), offline
    auto = load_split("fashion-mnist", "test", tmp_path / "auto")
    assert len(auto) == 20 and (tmp_path / "auto" / FOLDER / NAMES[("test", "images")]).is_symlink()


def test_download_checks_both_digests_and_keeps_nothing_else(tmp_path, monkeypatch):
    served = tmp_path / "served"
    write_fashion_layout(served)
    good = {name: hashlib.sha256((served / FOLDER / name).read_bytes()).hexdigest()
            for name in NAMES.values()}
    md5 = {name: hashlib.md5((served / FOLDER / name).read_bytes()).hexdigest()
           for name in NAMES.values()}

    def fake_download(url, root, filename):
        Path(root).mkdir(parents=True, exist_ok=True)
        (Path(root) / filename).write_bytes((served / FOLDER / filename).read_bytes())

    import torchvision.datasets.utils as tv_utils

    monkeypatch.setattr(reader, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setattr(tv_utils, "download_url", fake_download)
    monkeypatch.setattr(reader, "OFFICIAL_DIGESTS", {n: (md5[n], good[n]) for n in NAMES.values()})
    folder = tmp_path / "ok" / FOLDER
    assert reader.fetch_fashion_mnist(folder) == "download"
    assert sorted(p.name for p in folder.iterdir()) == sorted(NAMES.values())

    wrong = dict(reader.OFFICIAL_DIGESTS)
    name = NAMES[("train", "images")]
    wrong[name] = (md5[name], "0" * 64)  # md5 right, sha256 wrong: refused
    monkeypatch.setattr(reader, "OFFICIAL_DIGESTS", wrong)
    folder = tmp_path / "bad" / FOLDER
    with pytest.raises(DatasetError, match=rf"could not fetch {name} .*sha256 {good[name]}"):
        reader.fetch_fashion_mnist(folder)
    assert name not in {p.name for p in folder.iterdir()}
    assert not (folder / ".download").exists()


def test_with_neither_way_one_line_names_both(tmp_path, monkeypatch, capsys):
    def offline(url, root, filename):
        raise urllib.error.URLError("no network")

    import torchvision.datasets.utils as tv_utils

    monkeypatch.setattr(reader, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setattr(tv_utils, "download_url", offline)
    assert main(["download", "fashion-mnist", "--data-root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: fashion-mnist: could not fetch")
    assert "apt-get install dataset-fashion-mnist" in err
    assert "python -m datasets download fashion-mnist" in err
    assert not any((tmp_path / FOLDER).iterdir())


@debian
def test_debians_copy_reads_as_the_official_dataset(tmp_path, capsys):
    assert main(["download", "fashion-mnist", "--data-root", str(tmp_path)]) == 0
    assert main(["verify", "fashion-mnist", "--data-root", str(tmp_path)]) == 0
    summary = capsys.readouterr().out
    for split, n in (("train", 48000), ("val", 12000), ("trainval", 60000), ("test", 10000),
                     ("fewshot", 70000)):
        assert f'"{split}": {{\n      "images": {n},\n      "classes": 10' in summary
    test = load_split("fashion-mnist", "test", tmp_path)
    np.testing.assert_array_equal(np.bincount(test.targets), [1000] * 10)  # balanced classes
    reference = read_idx_gz(DEBIAN_DIR / NAMES[("test", "images")])
    np.testing.assert_array_equal(np.asarray(test.load_image(9999))[..., 0], reference[9999])
    np.testing.assert_array_equal(
        test.targets, read_idx_gz(DEBIAN_DIR / NAMES[("test", "labels")]).astype(np.int64)
    )
