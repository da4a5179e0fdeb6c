"""The many-shot linear protocol on cached features: L-BFGS logistic regression, C searched on val
(45 values of logspace(-6, 5) as 1/C, the first best wins), refit on train+val, scored on test,
with calibration (docs/protocols.md, "Linear").

``linear.py`` is ``parse_args`` -> ``run`` -> ``summary_lines`` -> ``write_run``; ``linear_probe``
is the same protocol for a backbone already built.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from datasets import get_dataset_spec
from transfer.classifiers.logreg import STRATEGIES, default_C_grid, fit_logreg, fit_logreg_grid
from transfer.features.cache import FeatureCache
from transfer.features.many_shot import FeatureOptions, many_shot_features
from transfer.protocols.arguments import (
    add_bootstrap_argument,
    add_feature_arguments,
    add_model_arguments,
    backbone_of,
    feature_options,
    positive_float,
    positive_int,
)
from transfer.records.outputs import PerImageOutputs
from transfer.records.provenance import provenance
from transfer.records.results import (
    RunResult,
    check_results_dir,
    run_result_paths,
)
from transfer.stats import metrics
from transfer.stats.bootstrap import interval_fields, interval_line
from transfer.stats.calibration import calibration_record
from transfer.stats.plateau import c_plateau, one_val_image, plateau_line

# Options that change the numbers: a run that sets one away from its default is filed under a
# name that says so (records.results.result_path), so it never replaces the paper-settings result.
RESULT_OPTIONS = {"C": "C", "wd_values": "w", "image_size": "i", "no_norm": "nonorm",
                  "precision": "precision", "solver": "solver", "strategy": "strategy"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Many-shot linear evaluation: L-BFGS logistic "
                                     "regression on cached features, C searched on val.")
    add_model_arguments(parser, dataset="cifar10")
    parser.add_argument("-w", "--wd-values", type=positive_int, default=45,
                        help="number of weight decay values logspace(-6, 5, W) to validate")
    parser.add_argument("-c", "--C", type=positive_float, default=None,
                        help="C = 1 / weight decay to use without searching on val")
    parser.add_argument(
        "--solver", choices=("sklearn", "torch"), default="sklearn",
        help="sklearn: the original's scikit-learn fits, on the CPU; torch: the same fits "
        "(scipy's L-BFGS-B repeated in PyTorch, float64) on --device, e.g. a GPU")
    parser.add_argument(
        "--strategy", choices=STRATEGIES, default="chain",
        help="with --solver torch: chain (default) makes the original's capped, warm-started "
        "fits, the paper's protocol; path and batched solve every C to convergence instead, "
        "which is NOT the paper's protocol (another C, another score: see docs/protocols.md)")
    add_bootstrap_argument(parser)
    add_feature_arguments(parser)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.solver == "sklearn" and args.strategy != "chain":
        parser.error(f"--strategy {args.strategy} needs --solver torch (the sklearn solver "
                     "makes the original's chain of fits only)")
    return args


def result_files(args: argparse.Namespace, model: str) -> list[Path]:
    """The result file of this run, as sweep.py expects it too."""
    return run_result_paths("linear", model, args, parse_args([]), RESULT_OPTIONS)


def run(args: argparse.Namespace) -> RunResult:
    """The protocol for parsed ``args``; the results folder is checked writable first."""
    check_results_dir("linear", args.results_dir)
    result = linear_probe(
        backbone_of(args), args.dataset, data_root=args.data_root,
        cache=FeatureCache(args.cache_dir), features=feature_options(args), C=args.C,
        num_wd=args.wd_values, solver=args.solver, strategy=args.strategy,
        bootstrap=args.bootstrap, arguments=vars(args))
    result.record["arguments"] = vars(args)
    return result


def summary_lines(record: dict[str, Any]) -> list[str]:
    """The original's score line, then the interval, the C plateau and calibration."""
    lines = [f"Final accuracy for {record['model']} on {record['dataset']}: "
             f"{record['score']:.2f}% using hyperparameter C: {record['C']:.3f}"]
    lines += [line for line in (interval_line(record), plateau_line(record.get("plateau")))
              if line]
    if record["ece"] is None:  # multi-label, or too few test samples
        lines.append("ECE: n/a, temperature scaled ECE: n/a")
    else:
        lines.append(f"ECE: {record['ece']:.3f}, "
                     f"temperature scaled ECE: {record['ece_temperature_scaled']:.3f}")
    return lines


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
) -> RunResult:
    """Run the protocol and return its record (scores in percent) and test outputs.

    ``strategy`` (torch solver): ``"chain"``, the original's fits; the converged strategies are
    not the paper's protocol (``classifiers.logreg.fit_logreg_grid``). ``bootstrap`` resamples give
    the score's interval (0: none). When C is searched, the record's ``plateau`` says how much the
    choice mattered (``stats.plateau``). ``arguments`` are the run's options for the
    provenance (default: this call's own).
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
    record = {
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
    }
    return RunResult(record, PerImageOutputs(test_y, scores))


def _class_columns(logits: np.ndarray, classes: np.ndarray | None, num_classes: int) -> np.ndarray:
    """Logits with column j for class j: a class absent from trainval (no column in the model)
    gets -inf, so the argmax and every metric are unchanged."""
    if classes is None or np.array_equal(classes, np.arange(num_classes)):
        return logits
    full = np.full((len(logits), num_classes), -np.inf)
    full[:, classes] = logits
    return full
