"""The ``provenance`` of a dense-task result (``results.provenance``), from the trained checkpoint
that the evaluation scripts load and the split list files they read."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.weights import file_sha256
from transfer.records.provenance import provenance


def dense_provenance(
    state: Mapping[str, Any],
    split_files: Mapping[str, str | Path],
    transform: str,
    options: Mapping[str, Any],
    device: str,
) -> dict[str, Any]:
    """``checkpoint`` is the pretrained backbone's identity (kept in the trained checkpoint's
    meta), ``trained_checkpoint`` the sha256 of the evaluated file; each split's identity is the
    sha256 of its list file (None when that file is not here, e.g. the training list)."""
    splits = {
        name: file_sha256(path) if Path(path).is_file() else None
        for name, path in split_files.items()
    }
    record = provenance(
        state["meta"].get("weights_identity"), splits, {"test": transform}, options, device
    )
    record["trained_checkpoint"] = file_sha256(state["path"])
    return record
