"""Keep files generated from a template (detectron2 and segmentation configs) equal to what the
template gives: one command writes the stale ones, ``--check`` only reports them."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from transfer.atomic import atomic_path


def sync_generated_files(
    expected: dict[Path, str],
    present: Iterable[Path],
    repo: Path,
    argv: list[str] | None = None,
    description: str = "",
) -> int:
    """Write every stale file of ``expected`` (or with ``--check`` list them and return 1);
    files in ``present`` that no template produces are reported, never deleted."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="report stale files, write none")
    args = parser.parse_args(argv)
    stale = [p for p, text in expected.items() if not p.is_file() or p.read_text() != text]
    extra = sorted(set(present) - set(expected))
    if args.check:
        for path in stale + extra:
            print(f"stale: {path.relative_to(repo)}")
        return 1 if stale or extra else 0
    for path in stale:
        with atomic_path(path) as tmp:
            tmp.write_text(expected[path])
        print(f"wrote {path.relative_to(repo)}")
    for path in extra:
        print(f"note: {path.relative_to(repo)} belongs to no model; delete it if unwanted")
    print(f"{len(expected)} configs, {len(stale)} rewritten")
    return 0
