"""Keep files generated from a template (detectron2 and segmentation configs) equal to what the
template gives: one command writes the stale ones, ``--check`` only reports them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from transfer.atomic import atomic_path


def sync_generated_files(expected: dict[Path, str], present: Iterable[Path], repo: Path,
                         check: bool = False) -> tuple[int, list[str]]:
    """Write every stale file of ``expected`` (with ``check``, write none and return 1 if any is
    stale); files in ``present`` that no template produces are reported, never deleted. Returns
    the exit status and the lines for the script to print."""
    stale = [p for p, text in expected.items() if not p.is_file() or p.read_text() != text]
    extra = sorted(set(present) - set(expected))
    if check:
        lines = [f"stale: {p.relative_to(repo)}" for p in stale + extra]
        return (1 if lines else 0), lines
    lines = []
    for path in stale:
        with atomic_path(path) as tmp:
            tmp.write_text(expected[path])
        lines.append(f"wrote {path.relative_to(repo)}")
    lines += [f"note: {p.relative_to(repo)} belongs to no model; delete it if unwanted"
              for p in extra]
    return 0, [*lines, f"{len(expected)} configs, {len(stale)} rewritten"]
