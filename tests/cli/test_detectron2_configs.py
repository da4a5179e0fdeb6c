"""The 28 detectron2 configs: generated, not drifted, holding the protocol's fields; configs for
another layout; check_configs.py's one-line errors; .gitignore. No detectron2 needed."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fixtures.detectron2_scripts import REPO, load_script

CONFIG_DIR = REPO / "detectron2-configs"
PAPER_MODELS = [
    "insdis", "moco-v1", "pcl-v1", "pirl", "pcl-v2", "simclr-v1", "moco-v2", "simclr-v2",
    "sela-v2", "infomin", "byol", "deepcluster-v2", "swav", "supervised",
]  # fmt: skip
UNNORMALIZED = {"simclr-v1", "simclr-v2"}  # converted from TF: inputs in [0, 1]
CASES = [(mode, model) for mode in ("frozen", "finetune") for model in PAPER_MODELS]


@pytest.fixture(scope="module")
def generator():
    return load_script("detectron2-configs/generate_configs.py")


def load(mode: str, model: str) -> dict:
    return yaml.safe_load((CONFIG_DIR / mode / f"{model}.yaml").read_text())


def yacs_value(value):
    """What detectron2's yacs makes of a YAML string: a Python literal where it parses as one."""
    try:
        return ast.literal_eval(value) if isinstance(value, str) else value
    except (ValueError, SyntaxError):
        return value


def test_committed_configs_equal_generated(generator) -> None:
    expected = generator.expected_configs()
    assert len(expected) == 28
    for path, text in expected.items():
        assert path.read_text() == text, (
            f"{path} is stale: run detectron2-configs/generate_configs.py"
        )
    committed = {p for mode in ("frozen", "finetune") for p in (CONFIG_DIR / mode).glob("*.yaml")}
    assert committed == set(expected)
    assert generator.main(["--check"]) == 0


def test_check_reports_a_stale_file(generator, tmp_path: Path, monkeypatch, capsys) -> None:
    for mode in ("frozen", "finetune"):
        (tmp_path / mode).mkdir()
        for model in PAPER_MODELS:
            src = CONFIG_DIR / mode / f"{model}.yaml"
            (tmp_path / mode / src.name).write_text(src.read_text())
    (tmp_path / "frozen" / "byol.yaml").write_text("MODEL: {}\n")
    monkeypatch.setattr(generator, "HERE", tmp_path)
    monkeypatch.setattr(generator, "REPO", tmp_path)
    assert generator.main(["--check"]) == 1
    assert capsys.readouterr().out.strip() == "stale: frozen/byol.yaml"
    assert generator.main([]) == 0
    assert (tmp_path / "frozen" / "byol.yaml").read_text() == (
        CONFIG_DIR / "frozen" / "byol.yaml"
    ).read_text()


@pytest.mark.parametrize(("mode", "model"), CASES)
def test_fields(mode: str, model: str) -> None:
    cfg = load(mode, model)
    m = cfg["MODEL"]
    assert cfg["_BASE_"] == "../../../detectron2/configs/Base-RCNN-FPN.yaml"
    assert m["WEIGHTS"] == f"../../ssl-transfer/models/detectron2/{model}.pkl"
    if model in UNNORMALIZED:
        assert m["PIXEL_MEAN"] == [0.0, 0.0, 0.0]
        assert m["PIXEL_STD"] == [255.0, 255.0, 255.0]
    else:
        assert m["PIXEL_MEAN"] == [123.675, 116.280, 103.530]
        assert m["PIXEL_STD"] == [58.395, 57.120, 57.375]
    assert m["MASK_ON"] is False
    assert m["BACKBONE"] == {"FREEZE_AT": 4 if mode == "frozen" else 0}
    assert m["RESNETS"] == {"DEPTH": 50, "STRIDE_IN_1X1": False}
    assert m["ROI_HEADS"] == {"NUM_CLASSES": 20}
    i = cfg["INPUT"]
    assert i["FORMAT"] == "RGB"
    assert yacs_value(i["MIN_SIZE_TRAIN"]) == tuple(range(480, 801, 32))
    assert i["MIN_SIZE_TEST"] == 800
    assert yacs_value(cfg["DATASETS"]["TRAIN"]) == ("voc_2007_trainval", "voc_2012_trainval")
    assert yacs_value(cfg["DATASETS"]["TEST"]) == ("voc_2007_test",)
    s = cfg["SOLVER"]
    assert s["BASE_LR"] == 0.0025
    assert s["IMS_PER_BATCH"] == 2
    assert yacs_value(s["STEPS"]) == (96000, 128000)
    assert s["MAX_ITER"] == 144000
    assert s["WARMUP_ITERS"] == 100
    assert set(cfg) == {"_BASE_", "MODEL", "INPUT", "DATASETS", "SOLVER"}


def test_paths_resolve_in_the_readme_layout(tmp_path: Path) -> None:
    """detectron2 joins _BASE_ to the config's folder and MODEL.WEIGHTS to the working directory
    (detectron2/tools); with both repositories side by side they reach the real files."""
    (tmp_path / "detectron2" / "configs").mkdir(parents=True)
    base = tmp_path / "detectron2" / "configs" / "Base-RCNN-FPN.yaml"
    base.write_text("MODEL: {}\n")
    pkl = tmp_path / "ssl-transfer" / "models" / "detectron2" / "byol.pkl"
    pkl.parent.mkdir(parents=True)
    pkl.write_bytes(b"")
    config = tmp_path / "ssl-transfer" / "detectron2-configs" / "frozen" / "byol.yaml"
    config.parent.mkdir(parents=True)
    config.write_text((CONFIG_DIR / "frozen" / "byol.yaml").read_text())
    tools = tmp_path / "detectron2" / "tools"
    tools.mkdir()

    config_arg = "../../ssl-transfer/detectron2-configs/frozen/byol.yaml"  # README command
    config_path = os.path.normpath(tools / config_arg)
    assert Path(config_path) == config
    cfg = load("frozen", "byol")
    assert Path(os.path.normpath(os.path.join(os.path.dirname(config_path), cfg["_BASE_"]))) == base
    assert Path(os.path.normpath(tools / cfg["MODEL"]["WEIGHTS"])) == pkl


# --- check_configs.py: bad input is one line before detectron2 is even imported ---------------


@pytest.fixture()
def checker():
    return load_script("detectron2-configs/check_configs.py")


def fake_checkout(tmp_path: Path) -> Path:
    """A folder that passes for a detectron2 checkout: check_configs.py only needs its base."""
    (tmp_path / "detectron2" / "configs").mkdir(parents=True)
    (tmp_path / "detectron2" / "configs" / "Base-RCNN-FPN.yaml").write_text("MODEL: {}\n")
    return tmp_path / "detectron2"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ")
    return err.strip()


def test_check_configs_unknown_model_is_one_line(checker, capsys) -> None:
    assert checker.main(["--models", "byol", "my-resnet"]) == 2
    err = one_error_line(capsys)
    assert "no detectron2 config for model 'my-resnet'" in err
    assert "configs exist for: insdis moco-v1" in err and "MODEL.WEIGHTS" in err


def test_check_configs_missing_pickle_is_one_line(checker, tmp_path: Path, capsys) -> None:
    argv = ["--detectron2", str(fake_checkout(tmp_path)), "--models-dir", str(tmp_path)]
    assert checker.main([*argv, "--models", "pirl"]) == 2
    err = one_error_line(capsys)
    assert err == (f"error: {tmp_path / 'detectron2' / 'pirl.pkl'} not found: make it with"
                   " python convert_to_detectron2.py --models pirl")  # fmt: skip
    # all 14 (the default): the absent ones are skipped, none at all is an error
    assert checker.main(argv) == 2
    assert "no converted checkpoint in" in one_error_line(capsys)


def test_check_configs_corrupt_pickle_is_one_line(checker, tmp_path: Path, capsys) -> None:
    from models.detectron2 import convert_checkpoint
    from tests.fixtures.checkpoints import write_common_checkpoint

    write_common_checkpoint(tmp_path / "swav.pth", seed=0)
    pkl = convert_checkpoint(tmp_path / "swav.pth", tmp_path / "detectron2" / "swav.pkl")
    pkl.write_bytes(pkl.read_bytes()[:100_000])  # a copy cut short
    argv = ["--detectron2", str(fake_checkout(tmp_path)), "--models-dir", str(tmp_path)]
    assert checker.main([*argv, "--models", "swav"]) == 2
    err = one_error_line(capsys)
    assert f"{pkl} is not a converted detectron2 checkpoint (UnpicklingError" in err
    assert err.endswith("remake it with python convert_to_detectron2.py --models swav")
    # a pickle of something else (here torch tensors, not arrays) is refused without running it
    import pickle

    import torch

    pkl.write_bytes(pickle.dumps({"model": {"stem.conv1.weight": torch.zeros(1)}}))
    assert checker.main([*argv, "--models", "swav"]) == 2
    assert "names torch._utils._rebuild_tensor_v2" in one_error_line(capsys)


def test_check_configs_dataset_root_without_voc_is_one_line(checker, tmp_path: Path,
                                                            capsys) -> None:  # fmt: skip
    from tests.fixtures.detectron2_voc import write_voc_devkit

    (tmp_path / "empty").mkdir()
    assert checker.main(["--datasets", str(tmp_path / "empty"), "--models", "byol"]) == 2
    err = one_error_line(capsys)
    assert f"dataset root {tmp_path / 'empty'} has no VOC2007/ImageSets/Main/trainval.txt" in err
    assert "$DETECTRON2_DATASETS/VOC2007" in err and "VOCtrainval_06-Nov-2007.tar" in err

    root = write_voc_devkit(tmp_path / "VOCdevkit", per_split=2, size=32)
    (root / "VOC2012" / "JPEGImages" / "2008_000001.jpg").unlink()
    assert checker.main(["--datasets", str(root), "--models", "byol"]) == 2
    err = one_error_line(capsys)
    assert err == (f"error: voc_2012_trainval: {root / 'VOC2012/ImageSets/Main/trainval.txt'}"
                   f" lists 2008_000001, but {root / 'VOC2012/JPEGImages/2008_000001.jpg'} is"
                   " missing")  # fmt: skip


# --- generate_configs.py --detectron2: configs for another layout -------------------------------


def test_generate_for_another_layout(generator, tmp_path: Path, capsys) -> None:
    checkout = fake_checkout(tmp_path)
    out, models = tmp_path / "configs", tmp_path / "my-models"
    argv = ["--detectron2", str(checkout), "--models-dir", str(models), "--out", str(out)]
    assert generator.main(argv) == 0
    assert "28 configs, 28 rewritten" in capsys.readouterr().out
    for mode in ("frozen", "finetune"):
        for model in PAPER_MODELS:
            ours = yaml.safe_load((out / mode / f"{model}.yaml").read_text())
            committed = load(mode, model)
            assert ours["_BASE_"] == str(checkout / "configs" / "Base-RCNN-FPN.yaml")
            assert ours["MODEL"].pop("WEIGHTS") == str(models / "detectron2" / f"{model}.pkl")
            committed["MODEL"].pop("WEIGHTS")
            assert {k: v for k, v in ours.items() if k != "_BASE_"} == {
                k: v for k, v in committed.items() if k != "_BASE_"}  # fmt: skip
    assert generator.main([*argv, "--check"]) == 0
    # the committed configs are untouched and still current
    assert generator.main(["--check"]) == 0


def test_generate_for_a_folder_that_is_no_checkout(generator, tmp_path: Path, capsys) -> None:
    assert generator.main(["--detectron2", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = one_error_line(capsys)
    assert f"{tmp_path / 'configs' / 'Base-RCNN-FPN.yaml'} not found" in err
    assert not (tmp_path / "out").exists()


# --- .gitignore: converted pickles stay out of git, also through a symlink ------------------------


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_gitignore_covers_a_symlinked_models_detectron2(tmp_path: Path) -> None:
    repo = tmp_path / "clone"
    (repo / "models").mkdir(parents=True)
    shutil.copy(REPO / ".gitignore", repo / ".gitignore")
    (tmp_path / "pickles").mkdir()
    (repo / "models" / "detectron2").symlink_to(tmp_path / "pickles", target_is_directory=True)
    (repo / "models" / "detectron2.py").write_text("")
    (repo / "detectron2-configs" / "local" / "frozen").mkdir(parents=True)
    (repo / "detectron2-configs" / "local" / "frozen" / "byol.yaml").write_text("")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert sorted(status.splitlines()) == ["?? .gitignore", "?? models/detectron2.py"]
