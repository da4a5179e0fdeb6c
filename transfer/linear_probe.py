"""The many-shot linear protocol (SPEC section 4) on cached features: C searched on val, refit on
train+val, scored on test, with calibration."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from datasets import get_dataset_spec
from transfer import metrics
from transfer.bootstrap import interval_fields
from transfer.cache import FeatureCache, FeatureOptions, many_shot_features
from transfer.calibration import calibration_record
from transfer.logreg import default_C_grid, fit_logreg, fit_logreg_grid
from transfer.plateau import c_plateau, one_val_image
from transfer.results import provenance


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
    strategy: str = "chain",
    bootstrap: int = 2000,
    arguments: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the protocol and return its result record (scores in percent).

    ``strategy`` (torch solver): ``"chain"``, the original's fits; the converged strategies are
    not the paper's protocol (``transfer.logreg.fit_logreg_grid``). ``bootstrap`` resamples give
    the score's interval (0: none). When C is searched, the record's ``plateau`` says how much the
    choice mattered (``transfer/plateau.py``). ``arguments`` are the run's options for the
    provenance (default: this call's own). The test outputs are in the record's ``"outputs"``
    entry (not JSON: the caller writes them with ``results.write_test_outputs`` and removes it).
    """
    start = time.perf_counter()
    given_C = C
    spec = get_dataset_spec(dataset)
    options = features or FeatureOptions()
    extracted = many_shot_features(
        backbone, dataset, data_root=data_root, cache=cache, options=options
    )
    splits, to_numpy = extracted.splits, extracted.features
    feature_seconds = extracted.seconds
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
            strategy=strategy,
        )
        C = result.best_C
        # the chain (both solvers) refits the original's one warm-started estimator, last left
        # at the grid's end; a converged refit walks its own path to C (fit_logreg)
        warm = result.last_model if strategy == "chain" else None
        grid_record = {
            "val_scores": dict(
                zip(map(float, result.Cs), map(float, result.val_scores), strict=True)
            ),
            "best_val_score": float(result.val_scores[result.best_index]),
            "unconverged_fits": int(result.unconverged_fits),
        }
    search_seconds = time.perf_counter() - search_start

    test_y = splits["test"].targets

    def test_fit(chosen_C: float) -> tuple[Any, np.ndarray, float]:
        model = fit_logreg(
            to_numpy["trainval"],
            splits["trainval"].targets,
            chosen_C,
            solver=solver,
            device=solver_device,
            warm_start_from=warm,
            strategy=strategy,
            # a converged refit walks the grid's path below C, as the grid reached C
            path_Cs=None if strategy == "chain" else default_C_grid(num_wd),
        )
        logits = model.decision_function(to_numpy["test"])
        return model, logits, metrics.score(spec.metric, test_y, logits, model.classes_)

    model, logits, score = test_fit(C)
    if grid_record:
        plateau = c_plateau(
            result.Cs, result.val_scores, one_val_image(spec.metric, splits["val"].targets)
        )
        # each end is refit exactly as the final model was (the chain: warm-started from the
        # grid's last fit), so its test score is what the protocol would have reported had it
        # chosen that C
        plateau["test_scores"] = {
            end: score if plateau[f"{end}_C"] == C else test_fit(plateau[f"{end}_C"])[2]
            for end in ("low", "high")
        }
        grid_record["plateau"] = plateau
    scores = _class_columns(logits, model.classes_, len(splits["test"].classes))
    # the logits' columns are model.classes_; multi-label targets pass through (no calibration)
    labels = test_y if model.multilabel else np.searchsorted(model.classes_, test_y)
    return {
        "protocol": "linear",
        "model": backbone.name,
        "dataset": dataset,
        "metric": spec.metric,
        "score": float(score),
        **interval_fields(spec.metric, test_y, scores, bootstrap),
        "C": float(C),
        **calibration_record(logits, labels),
        **grid_record,
        "solver": solver,
        "strategy": strategy,
        **extracted.record_fields(backbone),
        "timings": {
            "features_s": feature_seconds,
            "search_s": search_seconds,
            "total_s": time.perf_counter() - start,
        },
        "provenance": provenance(
            backbone.identity,
            splits,
            {"eval": extracted.transform_id},
            arguments
            if arguments is not None
            else {
                "model": backbone.name,
                "dataset": dataset,
                "C": given_C,
                "num_wd": num_wd,
                "solver": solver,
                "strategy": strategy,
                "bootstrap": bootstrap,
                "image_size": extracted.image_size,
                "batch_size": options.batch_size,
                "precision": options.precision,
            },
            options.device,
        ),
        "outputs": {"targets": test_y, "scores": scores},
    }


def _class_columns(logits: np.ndarray, classes: np.ndarray | None, num_classes: int) -> np.ndarray:
    """Logits with column j for class j: a class absent from trainval (no column in the model)
    gets -inf, so the argmax and every metric are unchanged."""
    if classes is None or np.array_equal(classes, np.arange(num_classes)):
        return logits
    full = np.full((len(logits), num_classes), -np.inf)
    full[:, classes] = logits
    return full
