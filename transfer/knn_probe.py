"""The many-shot weighted kNN protocol on cached features: k chosen on train -> val (T fixed),
then every k scored trainval -> test, and optionally low-shot kNN (n images per class, several
seeded tries) on the same features."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from datasets import get_dataset_spec, load_split
from transfer import metrics
from transfer.bootstrap import interval_fields
from transfer.cache import FeatureCache, FeatureOptions, many_shot_features
from transfer.knn import (
    DEFAULT_KS,
    DEFAULT_TEMPERATURE,
    QUERY_CHUNK,
    TRAIN_CHUNK,
    KnnError,
    check_k_fits,
    check_knn_options,
    knn_class_scores,
    sample_per_class,
)
from transfer.protonet import mean_and_ci95
from transfer.results import provenance


def knn_probe(
    backbone,
    dataset: str,
    *,
    data_root=None,
    cache: FeatureCache | None = None,
    features: FeatureOptions | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    temperature: float = DEFAULT_TEMPERATURE,
    metric_space: str = "cosine",
    n_per_class: Sequence[int] = (),
    tries: int = 5,
    seed: int = 0,
    query_chunk: int = QUERY_CHUNK,
    train_chunk: int = TRAIN_CHUNK,
    bootstrap: int = 2000,
    arguments: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the protocol and return its result record (scores in percent).

    Impossible requests (k above the train split's size, a shot count above a class's size)
    fail with a ``KnnError`` before any feature is computed. ``bootstrap`` resamples give the
    chosen k's test interval (0: none); ``arguments`` are the run's options for the provenance
    (default: this call's own). The chosen k's test class scores are in the record's
    ``"outputs"`` entry (not JSON: the caller writes them with ``results.write_test_outputs``).
    """
    start = time.perf_counter()
    ks = list(dict.fromkeys(int(k) for k in ks))  # the order given decides ties on val
    check_knn_options(ks, temperature, metric_space)
    if tries < 1:
        raise KnnError(f"--tries must be >= 1, got {tries}")
    spec = get_dataset_spec(dataset)
    # the split lists only (no image is read): bad requests fail before the feature pass
    train_size = len(load_split(dataset, "train", data_root))
    check_k_fits(ks, train_size, f"the train split of {dataset}")
    draws = {}  # low-shot samples depend on the labels only: drawn (and checked) up front
    if n_per_class:
        trainval_labels = load_split(dataset, "trainval", data_root).targets
        for n in dict.fromkeys(n_per_class):
            draws[n] = sample_per_class(trainval_labels, n, tries, seed)
            if draws[n].shape[1] < min(ks):
                raise KnnError(
                    f"--n-per-class {n} samples {draws[n].shape[1]} images, fewer than the "
                    f"smallest k ({min(ks)}): add a smaller --k or a larger --n-per-class"
                )

    options = features or FeatureOptions()
    extracted = many_shot_features(
        backbone, dataset, data_root=data_root, cache=cache, options=options
    )
    splits, x = extracted.splits, extracted.features
    num_classes = len(splits["trainval"].classes)

    def scores_for(train_x, train_y, query_x, query_y, these_ks, progress=False, keep=None):
        class_scores = knn_class_scores(
            train_x, train_y, query_x, these_ks,
            temperature=temperature, metric_space=metric_space, num_classes=num_classes,
            device=options.device, query_chunk=query_chunk, train_chunk=train_chunk,
            progress=progress,
        )  # fmt: skip
        if keep is not None:
            keep.update(class_scores)
        return {k: metrics.score(spec.metric, query_y, class_scores[k]) for k in these_ks}

    search_start = time.perf_counter()
    val = scores_for(x["train"], splits["train"].targets, x["val"], splits["val"].targets, ks)
    best_k = ks[metrics.first_best([val[k] for k in ks])]
    search_seconds = time.perf_counter() - search_start

    test_start = time.perf_counter()
    trainval_y = splits["trainval"].targets
    test_y = splits["test"].targets
    test_class_scores: dict = {}
    test = scores_for(
        x["trainval"], trainval_y, x["test"], test_y, ks, options.progress, test_class_scores
    )
    test_seconds = time.perf_counter() - test_start

    low_shot_start = time.perf_counter()
    low_shot = []
    for n, samples in draws.items():
        fitting = [k for k in ks if k <= samples.shape[1]]  # larger k: not enough images
        per_try = [
            scores_for(x["trainval"][d], trainval_y[d], x["test"], splits["test"].targets,
                       fitting)
            for d in samples
        ]  # fmt: skip
        for k in fitting:
            values = np.array([scores[k] for scores in per_try])
            mean, ci95 = mean_and_ci95(values)
            low_shot.append({
                "n_per_class": int(n), "k": k, "train_size": int(samples.shape[1]),
                "scores": values.tolist(), "mean": mean, "ci95": ci95,
            })  # fmt: skip
    low_shot_seconds = time.perf_counter() - low_shot_start

    record: dict[str, Any] = {
        "protocol": "knn",
        "model": backbone.name,
        "dataset": dataset,
        "metric": spec.metric,
        "score": float(test[best_k]),
        **interval_fields(spec.metric, test_y, test_class_scores[best_k], bootstrap),
        "k": best_k,
        "ks": ks,
        "temperature": float(temperature),
        "metric_space": metric_space,
        "val_scores": {str(k): float(val[k]) for k in ks},
        "best_val_score": float(val[best_k]),
        "test_scores": {str(k): float(test[k]) for k in ks},
        **extracted.record_fields(backbone),
        "timings": {
            "features_s": extracted.seconds,
            "search_s": search_seconds,
            "test_s": test_seconds,
            "low_shot_s": low_shot_seconds,
            "total_s": time.perf_counter() - start,
        },
        "provenance": provenance(
            backbone.identity,
            splits,
            {"eval": extracted.transform_id},
            arguments
            if arguments is not None
            else {
                "model": backbone.name, "dataset": dataset, "k": ks,
                "temperature": temperature, "metric_space": metric_space,
                "n_per_class": list(n_per_class), "tries": tries, "seed": seed,
                "bootstrap": bootstrap, "image_size": extracted.image_size,
                "batch_size": options.batch_size, "precision": options.precision,
            },
            options.device,
        ),  # fmt: skip
        "outputs": {"targets": test_y, "scores": test_class_scores[best_k]},
    }
    if n_per_class:
        # ci95 = 1.96 * std / sqrt(tries), numpy's std (ddof=0), as the few-shot intervals
        record["low_shot"] = {"tries": tries, "seed": seed, "results": low_shot}
    return record
