"""Is an existing result still what a run would produce now? Its provenance against the present.

A sweep skips a cell only when the record's ``provenance`` names the same checkpoint content
(the backbone's identity: the sha256 of its weights file, or the seed and library version of
``random``), the same split identities (``datasets.load_split(...).identity``, a hash of keys and
targets) and the same protocol options as the cell's command; otherwise it says why it reruns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from datasets import load_split
from models import load_backbone
from models.backbone import BackboneOptions
from transfer.errors import TransferError
from transfer.records.provenance import json_plain

#: Options that differ between the runs of one cell by design (few-shot files one shot count
#: each, and a rerun asks only for the missing ones).
_CELL_VARYING = {"few_shot": {"n_support"}}


class Present:
    """What a run would use now, computed once per model / split and shared by every cell."""

    def __init__(self, models_dir: str | None = None, data_root: str | None = None) -> None:
        self.models_dir = models_dir
        self.data_root = data_root
        self._checkpoints: dict[tuple[str, BackboneOptions | None], str] = {}
        self._splits: dict[tuple[str, str], str] = {}

    def checkpoint(self, model: str, options: BackboneOptions | None = None) -> str:
        """The identity ``load_backbone`` gives the model now, built with the cell's backbone
        ``options`` (a timm model's identity names its pool and layers; raises ModelError)."""
        if (model, options) not in self._checkpoints:
            self._checkpoints[model, options] = load_backbone(model, self.models_dir,
                                                              options=options).identity
        return self._checkpoints[model, options]

    def split(self, dataset: str, split: str) -> str:
        """The identity of the split as it loads now (raises DatasetError)."""
        if (dataset, split) not in self._splits:
            loaded = load_split(dataset, split, self.data_root, download=False)
            self._splits[dataset, split] = loaded.identity
        return self._splits[dataset, split]



def _first_difference(recorded: dict[str, Any], now: dict[str, Any],
                      ignore: set[str]) -> str | None:
    """The first option both sides name whose value differs. Options the record leaves out are
    places and speeds, not protocol (``records.provenance``); ``None`` now is a default the script
    resolves at run time (e.g. the dataset's image size), so the record's resolved value stands."""
    for key in sorted(set(recorded) & set(now) - ignore):
        if now[key] is not None and recorded[key] != now[key]:
            return f"{key} {recorded[key]!r} -> {now[key]!r}"
    return None


def rerun_reason(path: Path, protocol: str, model: str, dataset: str,
                 arguments: Mapping[str, Any], present: Present,
                 backbone: BackboneOptions | None = None) -> str | None:
    """None when the record at ``path`` matches what the cell would use now: its script's
    parsed ``arguments`` and its backbone built with ``backbone``; else why the cell must run
    again. ``path`` must exist."""
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        return f"the record is not readable ({error})"
    provenance = record.get("provenance") if isinstance(record, dict) else None
    if not isinstance(provenance, dict):
        return "the record has no provenance (written by an older version)"
    try:
        if provenance.get("checkpoint") != present.checkpoint(model, backbone):
            return "checkpoint changed"
    except TransferError as error:  # ModelError, or any other of the backbone loader
        return f"checkpoint cannot be checked ({str(error).splitlines()[0]})"
    splits = provenance.get("splits")
    if not isinstance(splits, dict) or not splits:
        return "the record names no split identities"
    changed = []
    for split, identity in sorted(splits.items()):
        try:
            if identity != present.split(dataset, split):
                changed.append(split)
        except TransferError as error:  # DatasetError
            return f"split {split} cannot be checked ({str(error).splitlines()[0]})"
    if changed:
        return f"split{'s' if len(changed) > 1 else ''} {', '.join(changed)} changed"
    options = provenance.get("options")
    if not isinstance(options, dict):
        return "the record names no options"
    now = {key: json_plain(value) for key, value in arguments.items()}
    difference = _first_difference(options, now,
                                   _CELL_VARYING.get(protocol, set()))
    if difference is not None:
        return f"options changed ({difference})"
    return None
