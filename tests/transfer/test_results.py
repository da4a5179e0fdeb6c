"""transfer/results.py: result file names, settings in them, and writing."""

from __future__ import annotations

import errno
import json

import pytest

from transfer import results
from transfer.atomic import WriteError


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
