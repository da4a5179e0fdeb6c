"""Write files so that a crash or Ctrl-C never leaves a half-written one behind."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transfer.errors import TransferError


class WriteError(TransferError):
    """A folder or file that this run must write cannot be written."""


def _create_temp(folder: Path, name: str) -> Path:
    """A new empty file ``.<name>.<random>.tmp`` in ``folder``, with the mode the umask gives
    every other new file (``tempfile.mkstemp`` makes it 0600: unreadable to a shared group)."""
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {folder / name}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_temp(path.parent, path.name)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json_atomic(path: str | os.PathLike, payload: Any) -> Path:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return Path(path)


def check_writable_dir(folder: str | os.PathLike, what: str, option: str) -> Path:
    """Check that a file can be written in ``folder`` (creating it if needed), or raise a
    WriteError naming it and ``option`` (the command-line option that moves it). Nothing is
    left behind: folders made for the check are removed again. A real write rather than
    ``os.access``, which says yes to root on a read-only mount and knows nothing of quotas."""
    folder = Path(folder)
    vanished: OSError | None = None
    for _ in range(3):
        try:
            _write_probe(folder)
            return folder
        except FileNotFoundError as error:
            # another run checking the same new folder removed it between our mkdir and our
            # write (runs started side by side by a sweep): check again
            vanished = error
        except OSError as error:
            raise _not_writable(folder, what, option, error) from error
    raise _not_writable(folder, what, option, vanished) from vanished


def _write_probe(folder: Path) -> None:
    """Create ``folder`` if needed, write and remove a file in it, then remove the folders this
    made (deepest first; one another run has filled meanwhile stays)."""
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _create_temp(folder, "write-check").unlink()
    finally:
        for path in missing:
            with contextlib.suppress(OSError):
                path.rmdir()


def _not_writable(folder: Path, what: str, option: str, error: OSError) -> WriteError:
    return WriteError(f"cannot write to the {what} {folder}: {error.strerror or error}; "
                      f"fix its permissions or choose another with {option}")
