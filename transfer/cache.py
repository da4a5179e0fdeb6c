"""The feature cache: each image's feature is computed once per (checkpoint, split content,
transform, precision) and reused by every protocol and every rerun."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from datasets import Split, get_dataset_spec, load_split
from models.registry import REPO_ROOT
from transfer.atomic import atomic_path
from transfer.device import device_name


def default_cache_dir() -> Path:
    """``$SSL_TRANSFER_CACHE`` if set, else ``features/`` in this repository."""
    env = os.environ.get("SSL_TRANSFER_CACHE")
    return Path(env) if env else REPO_ROOT / "features"


class FeatureCache:
    """Feature tensors on disk under ``<root>/<model>/<dataset>/``, named by a content key."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

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
        ``device`` (what computed it, e.g. the GPU's name) recorded beside it."""
        path = self.path(model, split, backbone_identity, transform_id, precision)
        if path.exists():
            try:
                stored = torch.load(path, map_location="cpu", weights_only=True)
                if stored["split_identity"] == split.identity and len(stored["features"]) == len(
                    split
                ):
                    return stored["features"], True
            except Exception:  # an unreadable cache entry is recomputed, never trusted
                pass
        features = compute()
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
        return features, False


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
