"""transfer/records/results.py: result file names, settings in them, writing, the per-image test
outputs beside a record, and the record's provenance."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess

import numpy as np
import pytest
from scipy.special import softmax

from datasets import load_split
from transfer.atomic import WriteError
from transfer.records import outputs, provenance, results
from transfer.stats import metrics


def test_paper_settings_and_other_settings_get_different_files(tmp_path):
    paper = results.result_path("linear", "byol", "dtd", results_dir=tmp_path)
    assert paper == tmp_path / "linear" / "byol__dtd.json"
    other = results.result_path("linear", "byol", "dtd", results_dir=tmp_path,
                                settings={"C": 1.0, "i": 32})
    assert other == tmp_path / "linear" / "byol__dtd__C1__i32.json"
    named = results.result_path("few_shot", "byol", "dtd", "5way5shot", tmp_path,
                                {"q": 10, "nonorm": True, "da": False, "solver": "torch",
                                 "C": 3.1622776601683795e-05})
    assert named.name == "byol__dtd__5way5shot__q10__nonorm__noda__solver-torch__C3.162e-05.json"


def test_changed_settings_keeps_only_values_away_from_their_default():
    values = {"C": None, "image_size": 32, "wd_values": 45, "no_norm": False, "solver": "torch"}
    defaults = {"C": None, "image_size": None, "wd_values": 45, "no_norm": False,
                "solver": "sklearn"}
    names = {"C": "C", "wd_values": "w", "image_size": "i", "no_norm": "nonorm", "solver": "solver"}
    assert results.changed_settings(values, defaults, names) == {"i": 32, "solver": "torch"}
    assert list(results.changed_settings(values, defaults, names)) == ["i", "solver"]  # names order


def test_a_result_that_cannot_be_written_is_one_clear_error(tmp_path, monkeypatch):
    def full_disk(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results, "write_json_atomic", full_disk)
    with pytest.raises(WriteError, match=r"cannot write the result .*x\.json: No space left"):
        results.write_result(tmp_path / "x.json", {"score": 1.0})


def test_check_results_dir_names_the_protocol_folder(tmp_path):
    assert results.check_results_dir("linear", tmp_path) == tmp_path / "linear"
    (tmp_path / "blocked").write_text("")
    with pytest.raises(WriteError, match="--results-dir"):
        results.check_results_dir("linear", tmp_path / "blocked")
    written = results.write_result(tmp_path / "linear" / "m__d.json", {"score": 1.0})
    assert json.loads(written.read_text())["score"] == 1.0


def test_single_label_outputs_keep_argmax_and_softmax(tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=5.0, size=(200, 7)) + 40.0
    logits[0, 3] = logits[0].max() + 1e-3  # a near tie that float16 of the raw logit would lose
    logits[1, 2] = logits[1].max() + 1e6  # gaps beyond float16's range
    targets = rng.integers(0, 7, 200)
    record = tmp_path / "linear" / "m__d.json"
    path = outputs.write_test_outputs(record, targets, logits)
    assert path == tmp_path / "linear" / "m__d.npz"
    assert [p.name for p in path.parent.iterdir()] == ["m__d.npz"]  # no temporary file left
    stored = outputs.read_test_outputs(record)
    assert stored["scores"].dtype == np.float16 and stored["targets"].dtype == np.int64
    np.testing.assert_array_equal(stored["targets"], targets)
    np.testing.assert_array_equal(stored["classes"], np.arange(7))
    np.testing.assert_array_equal(stored["scores"].argmax(1), logits.argmax(1))
    assert metrics.score("accuracy", targets, stored["scores"]) == metrics.score(
        "accuracy", targets, logits
    )
    np.testing.assert_allclose(
        softmax(stored["scores"].astype(np.float64), axis=1), softmax(logits, axis=1), atol=2e-3
    )


def test_multilabel_outputs_keep_the_ranking_in_each_column(tmp_path):
    rng = np.random.default_rng(1)
    targets = (rng.random((300, 4)) < 0.3).astype(np.uint8)
    scores = targets + rng.normal(scale=1.0, size=(300, 4)) + 20.0  # float16 would tie these
    outputs.write_test_outputs(tmp_path / "r.json", targets, scores, classes=np.arange(4))
    stored = outputs.read_test_outputs(tmp_path / "r.npz")
    assert stored["targets"].dtype == np.uint8 and stored["scores"].dtype == np.float32
    assert metrics.voc11_map(stored["targets"], stored["scores"]) == pytest.approx(
        metrics.voc11_map(targets, scores), abs=1e-9
    )


def test_outputs_reject_mismatched_shapes(tmp_path):
    with pytest.raises(ValueError, match="scores must be"):
        outputs.write_test_outputs(tmp_path / "r.json", np.zeros(3), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="classes must be"):
        outputs.write_test_outputs(tmp_path / "r.json", np.zeros(3), np.zeros((3, 2)), [0])
    assert not any(tmp_path.iterdir())


def _git(folder, *args):
    subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_code_version_of_a_checkout_and_of_a_plain_folder(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1.2.3"\n')
    (repo / ".gitignore").write_text("results/\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert provenance.code_version(repo) == {"version": "1.2.3", "commit": head, "dirty": False}
    (repo / "results").mkdir()
    (repo / "results" / "r.json").write_text("{}")  # ignored output: still clean
    assert provenance.code_version(repo)["dirty"] is False
    (repo / "new_module.py").write_text("")  # untracked code counts
    assert provenance.code_version(repo)["dirty"] is True
    (repo / "new_module.py").unlink()
    (repo / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1.2.4"\n')
    assert provenance.code_version(repo) == {"version": "1.2.4", "commit": head, "dirty": True}

    plain = tmp_path / "plain"
    plain.mkdir()
    assert provenance.code_version(plain) == {"version": None, "commit": None, "dirty": None}


def test_code_version_without_git(tmp_path, monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(provenance.subprocess, "run", no_git)
    assert provenance.code_version()["commit"] is None


def test_provenance_contents():
    trainval = load_split("digits", "trainval")
    test = load_split("digits", "test")
    arguments = {
        "model": "m",
        "C": None,
        "wd_values": 45,
        "cache_dir": "/somewhere",
        "workers": 4,
        "n_support": (1, 5),
    }
    made = provenance.provenance(
        "abc123", {"trainval": trainval, "test": test.identity}, {"eval": "eval-224-norm"},
        arguments, "cpu",
    )  # fmt: skip
    assert made["checkpoint"] == "abc123"
    assert made["splits"] == {"trainval": trainval.identity, "test": test.identity}
    assert made["transform"] == {"eval": "eval-224-norm"}
    assert made["options"] == {"C": None, "model": "m", "n_support": [1, 5], "wd_values": 45}
    assert made["code"]["version"] == provenance.project_version()
    assert set(made["versions"]) >= {"torch", "numpy", "scikit-learn"}
    assert made["device"].startswith("cpu")
