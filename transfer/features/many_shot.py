"""The four feature sets of a many-shot dataset: trainval and test are extracted once (through the
cache); train and val are rows of trainval, never extracted again."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from datasets import Split, get_dataset_spec, load_split
from transfer.features.cache import FeatureCache, cached_features


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
    """Features and targets of a many-shot dataset's four splits (docs/protocols.md, "Datasets
    and splits")."""

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
