"""The many-shot linear protocol (SPEC section 4) on cached features: C searched on val, refit on
train+val, scored on test, with calibration."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from datasets import build_transform, get_dataset_spec, load_split
from transfer import metrics
from transfer.cache import FeatureCache, cached_features, features_of_subset
from transfer.calibration import expected_calibration_error, temperature_scaled_ece
from transfer.logreg import default_C_grid, fit_logreg, fit_logreg_grid


@dataclass
class FeatureOptions:
    """How features are computed: the same for every protocol that uses the cache."""

    image_size: int | None = None
    batch_size: int = 64
    device: str = "cpu"
    workers: int = 2
    precision: str = "fp32"
    progress: bool = True


def linear_probe(
    backbone,
    dataset: str,
    *,
    data_root=None,
    cache: FeatureCache | None = None,
    features: FeatureOptions | None = None,
    C: float | None = None,
    num_wd: int = 45,
    solver: str = "sklearn",
    solver_device: str | None = None,
) -> dict[str, Any]:
    """Run the protocol and return its result record (scores in percent)."""
    start = time.perf_counter()
    spec = get_dataset_spec(dataset)
    options = features or FeatureOptions()
    image_size = options.image_size or spec.default_image_size
    transform = build_transform("eval", image_size, backbone.normalize)
    cache = cache or FeatureCache()
    splits = {
        name: load_split(dataset, name, data_root) for name in ("trainval", "test", "train", "val")
    }

    def extract(split):
        return cached_features(
            backbone,
            split,
            transform,
            cache,
            batch_size=options.batch_size,
            device=options.device,
            workers=options.workers,
            precision=options.precision,
            progress=options.progress,
        )

    (trainval_x, hit_trainval), (test_x, hit_test) = (
        extract(splits["trainval"]),
        extract(splits["test"]),
    )
    feature_seconds = time.perf_counter() - start
    # train and val are parts of trainval: their features are rows of the same extraction
    train_x = features_of_subset(splits["train"], splits["trainval"], trainval_x)
    val_x = features_of_subset(splits["val"], splits["trainval"], trainval_x)
    to_numpy = {
        "trainval": trainval_x.numpy(),
        "test": test_x.numpy(),
        "train": train_x.numpy(),
        "val": val_x.numpy(),
    }
    # the sklearn solver runs where scikit-learn runs; torch's follows the features by default
    solver_device = "cpu" if solver == "sklearn" else solver_device or options.device

    search_start = time.perf_counter()
    grid_record: dict[str, Any] = {}
    warm = None
    if C is None:
        result = fit_logreg_grid(
            to_numpy["train"],
            splits["train"].targets,
            to_numpy["val"],
            splits["val"].targets,
            default_C_grid(num_wd),
            spec.metric,
            solver=solver,
            device=solver_device,
            progress=options.progress,
        )
        C = result.best_C
        # both solvers make the original's chain of fits: it refits its one warm-started
        # estimator, last left at the grid's end
        warm = result.last_model
        grid_record = {
            "val_scores": dict(
                zip(map(float, result.Cs), map(float, result.val_scores), strict=True)
            ),
            "best_val_score": float(result.val_scores[result.best_index]),
            "unconverged_fits": int(result.unconverged_fits),
        }
    search_seconds = time.perf_counter() - search_start

    model = fit_logreg(
        to_numpy["trainval"],
        splits["trainval"].targets,
        C,
        solver=solver,
        device=solver_device,
        warm_start_from=warm,
    )
    logits = model.decision_function(to_numpy["test"])
    test_y = splits["test"].targets
    score = metrics.score(spec.metric, test_y, logits, model.classes_)
    ece = ece_scaled = None
    if spec.metric != "voc11_map":  # calibration needs one softmax over classes
        columns = np.searchsorted(model.classes_, test_y)
        ece = expected_calibration_error(logits, columns)
        ece_scaled = temperature_scaled_ece(logits, columns)
    return {
        "protocol": "linear",
        "model": backbone.name,
        "dataset": dataset,
        "metric": spec.metric,
        "score": float(score),
        "C": float(C),
        "ece": ece,
        "ece_scaled": ece_scaled,
        **grid_record,
        "solver": solver,
        "image_size": image_size,
        "normalize": backbone.normalize,
        "sizes": {name: len(split) for name, split in splits.items()},
        "features_cached": bool(hit_trainval and hit_test),
        "timings": {
            "features_s": feature_seconds,
            "search_s": search_seconds,
            "total_s": time.perf_counter() - start,
        },
    }
