"""The feature cache: each image's feature is computed once per (checkpoint, split content,
transform, precision) and reused by every protocol and every rerun."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from datasets import Split
from models.registry import REPO_ROOT
from models.weights import torch_load_failure
from transfer.atomic import WriteError, atomic_path, check_writable_dir
from transfer.features.extract import extract_features
from transfer.runtime.device import device_name

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$SSL_TRANSFER_CACHE`` if set, else ``features/`` in this repository."""
    env = os.environ.get("SSL_TRANSFER_CACHE")
    return Path(env) if env else REPO_ROOT / "features"


class FeatureCache:
    """Feature tensors on disk under ``<root>/<model>/<dataset>/``, named by a content key."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        # before any work: a cache that cannot be written fails now, not after the extraction
        check_writable_dir(self.root, "feature cache", "--cache-dir")

    @staticmethod
    def key(backbone_identity: str, split_identity: str, transform_id: str, precision: str) -> str:
        text = "\n".join((backbone_identity, split_identity, transform_id, precision))
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def path(
        self, model: str, split: Split, backbone_identity: str, transform_id: str, precision: str
    ) -> Path:
        key = self.key(backbone_identity, split.identity, transform_id, precision)
        return (
            self.root / model / split.dataset / f"{split.name}-{transform_id}-{precision}-{key}.pt"
        )

    def get_or_compute(
        self,
        model: str,
        split: Split,
        backbone_identity: str,
        transform_id: str,
        precision: str,
        compute: Callable[[], torch.Tensor],
        device: str = "",
    ) -> tuple[torch.Tensor, bool]:
        """``(features, hit)``: the cached tensor, or one computed and stored atomically with
        ``device`` (what computed it, e.g. the GPU's name) recorded beside it.

        Runs that want the same entry at once take turns (a lock per entry): the first computes
        it, the others wait and load it.
        """
        path = self.path(model, split, backbone_identity, transform_id, precision)
        with _entry_lock(path):
            if path.exists():
                stored = _read_entry(path, split)
                if stored is not None:
                    return stored, True
            features = compute()
            try:
                with atomic_path(path) as tmp:
                    torch.save(
                        {
                            "features": features,
                            "split_identity": split.identity,
                            "backbone_identity": backbone_identity,
                            "transform_id": transform_id,
                            "precision": precision,
                            "device": device,
                        },
                        tmp,
                    )
            except OSError as error:
                raise WriteError(
                    f"cannot write the cache entry {path}: {error.strerror or error}"
                ) from error
        return features, False


def _read_entry(path: Path, split: Split) -> torch.Tensor | None:
    """The features stored at ``path`` for ``split``, or None (said in one line) when the entry
    cannot be read or does not fit the split: it is then recomputed, never trusted."""
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        features = stored["features"]
        if stored["split_identity"] != split.identity:
            reason = "made for another version of the split"
        elif len(features) != len(split):
            reason = f"{len(features)} rows for {len(split)} images"
        else:
            return features
    except Exception as error:  # torch raises many types for a truncated or foreign file
        reason = torch_load_failure(error)
    logger.warning("cache entry %s unusable (%s); recomputing it", path, reason)
    return None


@contextlib.contextmanager
def _entry_lock(path: Path) -> Iterator[None]:
    """Hold ``<entry>.lock`` (``flock``) while the entry is read or made; where there is no
    ``fcntl`` (Windows) runs go unlocked, as before. The lock file stays: removing it would
    let a third run lock a new file while the second still holds the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another run that is computing %s", path.name)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_features(
    backbone,
    split: Split,
    transform,
    cache: FeatureCache,
    *,
    batch_size: int = 64,
    device: str = "cpu",
    workers: int = 2,
    precision: str = "fp32",
    progress: bool = True,
) -> tuple[torch.Tensor, bool]:
    """Features of ``split`` through the cache: ``(features, loaded_from_cache)``."""
    return cache.get_or_compute(
        backbone.name,
        split,
        backbone.identity,
        transform.transform_id,
        precision,
        lambda: extract_features(
            backbone,
            split,
            transform,
            batch_size=batch_size,
            device=device,
            workers=workers,
            precision=precision,
            progress=progress,
        ),
        device=device_name(device),
    )
