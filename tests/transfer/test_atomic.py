"""transfer/atomic.py: files appear whole or not at all, with the umask's usual mode."""

from __future__ import annotations

import os
import stat

import pytest

from transfer.atomic import WriteError, atomic_path, check_writable_dir, write_json_atomic


@pytest.fixture
def umask():
    def set_umask(value):
        previous.append(os.umask(value))

    previous = []
    yield set_umask
    if previous:
        os.umask(previous[0])


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_files_get_the_mode_of_any_new_file(tmp_path, umask, mask):
    umask(mask)
    written = write_json_atomic(tmp_path / "sub" / "record.json", {"a": 1})
    reference = tmp_path / "plain"
    reference.write_text("")
    mode = stat.S_IMODE(written.stat().st_mode)
    assert mode == stat.S_IMODE(reference.stat().st_mode) == 0o666 & ~mask


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_check_writable_dir_leaves_nothing_behind_or_names_the_option(tmp_path):
    assert check_writable_dir(tmp_path / "a" / "b", "results folder", "--results-dir")
    assert list(tmp_path.iterdir()) == []  # neither the probe file nor the folders made for it
    (tmp_path / "kept").mkdir()
    check_writable_dir(tmp_path / "kept", "results folder", "--results-dir")
    assert list(tmp_path.iterdir()) == [tmp_path / "kept"]
    (tmp_path / "file").write_text("")
    with pytest.raises(WriteError, match=r"cannot write to the results folder .*/file/r: .*; "
                                         r"fix its permissions or choose another with "
                                         r"--results-dir"):
        check_writable_dir(tmp_path / "file" / "r", "results folder", "--results-dir")


@pytest.mark.parametrize("removals, passes", [(1, True), (3, False)])
def test_check_writable_dir_survives_a_concurrent_check(tmp_path, monkeypatch, removals,
                                                        passes):
    """Two runs checking the same new folder: one removes it (nothing left behind) while the
    other is between its mkdir and its write. The other checks again rather than failing; a
    folder that keeps vanishing is still an error."""
    import transfer.atomic as atomic

    real, calls = atomic._create_temp, []

    def racing(folder, name):
        calls.append(folder)
        if len(calls) <= removals:
            folder.rmdir()  # the other run's clean-up
        return real(folder, name)

    monkeypatch.setattr(atomic, "_create_temp", racing)
    target = tmp_path / "results" / "linear"
    if passes:
        assert check_writable_dir(target, "results folder", "--results-dir") == target
        assert len(calls) == 2
    else:
        with pytest.raises(WriteError, match="cannot write to the results folder"):
            check_writable_dir(target, "results folder", "--results-dir")
        assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []
