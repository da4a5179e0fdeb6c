"""``python -m datasets list / verify / download`` on the fixtures."""

import json
import runpy
import sys
from pathlib import Path

import pytest

from datasets import get_dataset_spec
from datasets.__main__ import main
from datasets.download import download_dataset
from datasets.errors import DatasetError
from tests.fixtures.dataset_layouts import (
    FIXTURE_DATASETS,
    FOLDERS,
    expected_layout,
    load_options,
    write_layout,
)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-data")
    for name in FIXTURE_DATASETS:
        write_layout(name, root)
    return root


def _expected_counts(name):
    """{split: (images, classes)} computed from the fixture's own description."""
    spec, truth = get_dataset_spec(name), expected_layout(name)
    n = {part: len(rows) for part, rows in truth.parts.items()}
    c = len(truth.classes)
    if spec.few_shot_only:
        return {"fewshot": (n["train"], c)}
    if spec.predefined_val:
        counts = {"train": n["train"], "val": n["val"], "trainval": n["train"] + n["val"]}
        counts["fewshot"] = n["train"] + n["val"] + n["test"]
    else:
        n_val = n["train"] // 5
        counts = {"train": n["train"] - n_val, "val": n_val, "trainval": n["train"]}
        counts["fewshot"] = n["train"] + n["test"]
    counts["test"] = n["test"]
    return {s: (counts[s], c) for s in spec.splits}


def _verify_args(name, root, *extra):
    args = ["verify", name, "--data-root", str(root), *extra]
    split_dir = load_options(name, root).get("split_files_dir")
    return args + (["--split-files-dir", str(split_dir)] if split_dir else [])


@pytest.mark.parametrize("name", FIXTURE_DATASETS)
def test_verify_passes_with_the_right_counts(name, data_root, capsys):
    assert main(_verify_args(name, data_root, "--deep")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] is True and summary["dataset"] == name
    assert summary["data_root"] == str(data_root)
    got = {s: (v["images"], v["classes"]) for s, v in summary["splits"].items()}
    # Small random val splits may miss a class; the class count is then what is present.
    expected = _expected_counts(name)
    assert {s: v[0] for s, v in got.items()} == {s: v[0] for s, v in expected.items()}
    for split, (_, classes) in got.items():
        assert classes == expected[split][1] or split == "val"


# One file (or folder) per dataset that says which images form which split.
SPLIT_FILES = {
    "aircraft": "data/images_variant_test.txt",
    "caltech101": "fixture-splits/test.txt",
    "cars": "devkit/cars_test_annos_withlabels.mat",
    "cifar10": "cifar-10-batches-py/test_batch",
    "cifar100": "cifar-100-python/test",
    "dtd": "labels/train1.txt",
    "flowers": "setid.mat",
    "food": "food-101/meta/test.json",
    "pets": "annotations/test.txt",
    "sun397": "Testing_01.txt",
    "voc2007": "VOCdevkit/VOC2007/ImageSets/Main/bird_val.txt",
    "cropdiseases": "dataset/train",
    "eurosat": "2750",
    "isic": "ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv",
    "chestx": "Data_Entry_2017.csv",
}


@pytest.mark.parametrize("name", FIXTURE_DATASETS)
def test_verify_names_a_removed_split_file_for_every_dataset(name, data_root, tmp_path, capsys):
    import shutil

    folder = FOLDERS[name]
    shutil.copytree(data_root / folder, tmp_path / folder)
    removed = tmp_path / folder / SPLIT_FILES[name]
    shutil.rmtree(removed) if removed.is_dir() else removed.unlink()
    assert main(_verify_args(name, tmp_path)) == 1
    assert str(removed) in capsys.readouterr().err


def test_verify_fails_on_a_removed_split_file(data_root, tmp_path, capsys):
    import shutil

    shutil.copytree(data_root / "DTD", tmp_path / "DTD")
    (tmp_path / "DTD" / "labels" / "test1.txt").unlink()
    assert main(_verify_args("dtd", tmp_path)) == 1
    err = capsys.readouterr().err
    assert f"missing file {tmp_path / 'DTD' / 'labels' / 'test1.txt'}" in err
    assert "images/<class>/<file>.jpg" in err and "robots.ox.ac.uk/~vgg/data/dtd" in err


def test_verify_reports_missing_and_broken_images(data_root, tmp_path, capsys):
    import shutil

    shutil.copytree(data_root / "Flowers", tmp_path / "Flowers")
    images = sorted((tmp_path / "Flowers" / "jpg").iterdir())
    images[0].unlink()
    images[1].write_bytes(b"garbage")
    assert main(_verify_args("flowers", tmp_path)) == 1
    shallow = json.loads(capsys.readouterr().out)
    assert shallow["missing"] == [str(images[0])] and "unreadable" not in shallow
    assert main(_verify_args("flowers", tmp_path, "--deep")) == 1
    deep = json.loads(capsys.readouterr().out)
    assert deep["unreadable_count"] == 1 and images[1].name in deep["unreadable"][0]


def test_list_and_verify_as_a_module(data_root, monkeypatch, capsys):
    """The listing through main(); the entry point itself (exit status, error on stderr) as
    ``python -m datasets`` runs it, through runpy in this process (a fresh interpreter would
    spend seconds importing torch to say the same)."""
    monkeypatch.setenv("SSL_TRANSFER_DATA", str(data_root))
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[-1] for line in listing.splitlines()[3:]}
    assert rows["dtd"] == "yes" and rows["digits"] == "demo" and len(rows) == 17
    assert str(data_root) in listing
    monkeypatch.setattr(sys, "argv", ["datasets", "verify", "sun397", "--data-root",
                                      str(data_root / "x")])
    monkeypatch.delitem(sys.modules, "datasets.__main__")  # run afresh, as `-m` does
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("datasets", run_name="__main__", alter_sys=True)
    assert exited.value.code == 1
    assert (f"missing dataset folder {data_root / 'x' / FOLDERS['sun397']}"
            in capsys.readouterr().err)


def test_download_prints_manual_steps_where_none_exists(tmp_path, capsys):
    assert main(["download", "isic", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no automatic download" in out and "ISIC2018_Task3_Training_GroundTruth.csv" in out
    assert out.rstrip().endswith(f"under {tmp_path}")
    assert not (tmp_path / "ISIC").exists()
    # the library says it in the error it raises, and prints nothing itself
    with pytest.raises(DatasetError, match=r"isic: no automatic download"):
        download_dataset("isic", tmp_path)
    assert capsys.readouterr().out == "" and not (tmp_path / "ISIC").exists()


def test_download_moves_torchvisions_folders_into_spec_layout(data_root, tmp_path, monkeypatch):
    """torchvision's DTD lands in dtd/dtd/; the downloader must move it to DTD/ (no network)."""
    import shutil

    import torchvision.datasets as tv

    def fake_dtd(root, download):
        assert download
        target = Path(root) / "dtd" / "dtd"
        for sub in ("images", "labels", "imdb"):
            source = data_root / "DTD" / sub
            if source.exists():
                shutil.copytree(source, target / sub)
            else:
                (target / sub).mkdir(parents=True)

    monkeypatch.setattr(tv, "DTD", fake_dtd)
    assert main(["download", "dtd", "--data-root", str(tmp_path)]) == 0
    assert not (tmp_path / "DTD" / ".download").exists()
    assert main(_verify_args("dtd", tmp_path)) == 0


def test_verify_deep_finds_a_truncated_image(data_root, tmp_path, capsys):
    """A JPEG cut in half opens (its header is whole) and fails only when decoded."""
    import shutil

    shutil.copytree(data_root / "DTD", tmp_path / "DTD")
    image = sorted((tmp_path / "DTD" / "images").rglob("*.jpg"))[2]
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    assert main(_verify_args("dtd", tmp_path)) == 0  # present: the shallow check passes
    capsys.readouterr()
    assert main(_verify_args("dtd", tmp_path, "--deep")) == 1
    deep = json.loads(capsys.readouterr().out)
    assert deep["unreadable_count"] == 1
    assert deep["unreadable"][0].startswith(f"cannot read image {image}: ")


@pytest.mark.parametrize(("name", "relative", "line"), [
    ("dtd", "DTD/labels/train1.txt", 2),
    ("isic", "ISIC/ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv", 3),
])
def test_a_label_file_that_is_not_utf8_is_named_with_its_line(data_root, tmp_path, capsys, name,
                                                               relative, line):
    import shutil

    folder = relative.split("/", 1)[0]
    shutil.copytree(data_root / folder, tmp_path / folder)
    path = tmp_path / relative
    lines = path.read_bytes().split(b"\n")
    lines[line - 1] = lines[line - 1].replace(b"_", "é".encode("latin-1"), 1)
    path.write_bytes(b"\n".join(lines))
    assert main(_verify_args(name, tmp_path)) == 1
    (message,) = capsys.readouterr().err.splitlines()
    assert message.startswith(f"error: {path}, line {line}: not UTF-8 text (byte 0xe9 at column ")
    assert message.endswith("save the file as UTF-8")
