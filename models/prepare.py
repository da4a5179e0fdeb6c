"""Turn one registered model's source file into ``models/<name>.pth``: download if needed,
convert, save atomically. The raw download is never modified."""

from __future__ import annotations

from pathlib import Path

import torch

from models.convert import ConversionReport, convert_file
from models.download import download
from models.errors import ModelError
from models.registry import RANDOM, ModelSpec
from models.resolve import checkpoint_path
from transfer.atomic import atomic_path


def raw_dir(models_dir: str | Path) -> Path:
    return Path(models_dir) / "raw"


def fetch_source(spec: ModelSpec, models_dir: str | Path) -> Path:
    """The raw checkpoint of ``spec`` in ``models/raw/``, downloaded when absent."""
    if spec.source_format == RANDOM:
        raise ModelError("'random' is initialised in memory and needs no file")
    if not spec.downloadable:
        raise ModelError(f"{spec.name} cannot be downloaded by a script.\n{spec.manual_steps}")
    return download(
        spec.download_url,
        raw_dir(models_dir) / spec.raw_filename,
        sha256=spec.sha256,
        sha256_prefix=spec.sha256_prefix,
    )


def prepare_model(
    spec: ModelSpec, models_dir: str | Path, source: str | Path | None = None
) -> tuple[Path, ConversionReport]:
    """Convert ``source`` (or the download) to the common format at ``models/<name>.pth``."""
    source = Path(source) if source is not None else fetch_source(spec, models_dir)
    if not source.is_file():
        raise ModelError(f"no file at {source}")
    state_dict, report = convert_file(spec, source)
    target = checkpoint_path(spec.name, models_dir)
    with atomic_path(target) as tmp:
        torch.save(state_dict, tmp)
    return target, report
