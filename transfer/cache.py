"""The feature cache: each image's feature is computed once per (checkpoint, split content,
transform, precision) and reused by every protocol and every rerun."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from datasets import Split, get_dataset_spec, load_split
from models.registry import REPO_ROOT
from models.weights import torch_load_failure
from transfer.atomic import WriteError, atomic_path, check_writable_dir
from transfer.device import device_name


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
                ) from None
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
    print(f"warning: cache entry {path} unusable ({reason}); recomputing it", file=sys.stderr)
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
            print(f"waiting for another run that is computing {path.name}", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def features_of_subset(subset: Split, pool: Split, pool_features: torch.Tensor) -> torch.Tensor:
    """Rows of ``pool_features`` for the images of ``subset`` (matched by key), so that e.g. the
    train and val parts of trainval are never extracted a second time."""
    index = {key: i for i, key in enumerate(pool.keys)}
    missing = [key for key in subset.keys if key not in index]
    if missing:
        raise KeyError(
            f"{len(missing)} images of {subset.name} are not in {pool.name}, e.g. {missing[:3]}"
        )
    return pool_features[np.array([index[key] for key in subset.keys], dtype=np.int64)]


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
    from transfer.features import extract_features

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


@dataclass
class FeatureOptions:
    """How features are computed: the same for every protocol that uses the cache."""

    image_size: int | None = None
    batch_size: int = 64
    device: str = "cpu"
    workers: int = 2
    precision: str = "fp32"
    progress: bool = True


MANY_SHOT_SPLITS = ("trainval", "test", "train", "val")


@dataclass
class ManyShotFeatures:
    """Features and targets of a many-shot dataset's four splits (SPEC section 2)."""

    splits: dict[str, Split]
    features: dict[str, np.ndarray]
    image_size: int
    transform_id: str
    cached: bool  # trainval and test were both served from the cache
    seconds: float

    def targets(self, name: str) -> np.ndarray:
        return self.splits[name].targets

    def record_fields(self, backbone) -> dict:
        """What every many-shot record says about its features and their backbone."""
        return {
            "image_size": self.image_size,
            "normalize": backbone.normalize,
            "transform_id": self.transform_id,
            "backbone": backbone.describe(),
            "sizes": {name: len(split) for name, split in self.splits.items()},
            "features_cached": self.cached,
        }


def many_shot_features(
    backbone,
    dataset: str,
    *,
    data_root=None,
    cache: FeatureCache | None = None,
    options: FeatureOptions | None = None,
) -> ManyShotFeatures:
    """Extract trainval and test once (through the cache); train and val are rows of trainval."""
    start = time.perf_counter()
    spec = get_dataset_spec(dataset)
    options = options or FeatureOptions()
    image_size = backbone.image_size(options.image_size, spec.default_image_size)
    transform = backbone.transform("eval", image_size)
    cache = cache or FeatureCache()
    splits = {name: load_split(dataset, name, data_root) for name in MANY_SHOT_SPLITS}
    extracted = {
        name: cached_features(
            backbone,
            splits[name],
            transform,
            cache,
            batch_size=options.batch_size,
            device=options.device,
            workers=options.workers,
            precision=options.precision,
            progress=options.progress,
        )
        for name in ("trainval", "test")
    }
    trainval_x = extracted["trainval"][0]
    features = {
        "trainval": trainval_x.numpy(),
        "test": extracted["test"][0].numpy(),
        "train": features_of_subset(splits["train"], splits["trainval"], trainval_x).numpy(),
        "val": features_of_subset(splits["val"], splits["trainval"], trainval_x).numpy(),
    }
    return ManyShotFeatures(
        splits=splits,
        features=features,
        image_size=image_size,
        transform_id=transform.transform_id,
        cached=all(hit for _, hit in extracted.values()),
        seconds=time.perf_counter() - start,
    )
