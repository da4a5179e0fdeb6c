"""How well ImageNet top-1 predicts each score column: Pearson and Spearman on logits."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from models.registry import MODELS
from transfer.report.tables import Table
from transfer.stats.comparisons import correlation_intervals, model_resamples

LOGIT_EPS = 1e-6  # a score of exactly 0 or 100% has no logit; clip it this close


def imagenet_top1(extra: Mapping[str, float] | None = None) -> dict[str, float]:
    """ImageNet top-1 of every registered model that has one (the paper's numbers), plus those
    the user gives (``--imagenet-top1 NAME=VALUE``, e.g. for timm models), which win."""
    top1 = {name: spec.imagenet_top1 for name, spec in MODELS.items()
            if spec.imagenet_top1 is not None}
    return {**top1, **(extra or {})}


def logit_percent(values: Any) -> np.ndarray:
    """logit(p / 100), the transform the paper correlates on; 0 and 100% are clipped."""
    p = np.clip(np.asarray(values, dtype=float) / 100.0, LOGIT_EPS, 1.0 - LOGIT_EPS)
    return np.log(p / (1.0 - p))


@dataclass(frozen=True)
class Correlation:
    """Pearson and Spearman over ``n_models``, with 95% intervals from resampling the models
    (NaN when not computed)."""

    n_models: int
    pearson_r: float = math.nan
    pearson_p: float = math.nan
    spearman_rho: float = math.nan
    spearman_p: float = math.nan
    pearson_low: float = math.nan
    pearson_high: float = math.nan
    spearman_low: float = math.nan
    spearman_high: float = math.nan


def correlate(top1: Mapping[str, float], scores: Mapping[str, float], n_resamples: int = 0,
              seed: int = 0) -> Correlation:
    """Pearson and Spearman of logit(top-1) against logit(score) over the models with both;
    needs three models, and is NaN when either side is constant. With ``n_resamples``, their
    percentile intervals over that many resampled sets of models."""
    models = [m for m in scores if m in top1 and pd.notna(scores[m])]
    if len(models) < 3:
        return Correlation(len(models))
    x = logit_percent([top1[m] for m in models])
    y = logit_percent([scores[m] for m in models])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: scipy warns and returns NaN
        pearson = stats.pearsonr(x, y)
        spearman = stats.spearmanr(x, y)
    intervals = {}
    if n_resamples > 0:
        found = correlation_intervals(x, y, model_resamples(len(models), n_resamples, seed))
        intervals = {"pearson_low": found.pearson[0], "pearson_high": found.pearson[1],
                     "spearman_low": found.spearman[0], "spearman_high": found.spearman[1]}
    return Correlation(len(models), float(pearson.statistic), float(pearson.pvalue),
                       float(spearman.statistic), float(spearman.pvalue), **intervals)


def column_scores(table: Table, column: str) -> dict[str, float]:
    factor = table.percent_columns[column]
    return {m: float(v) * factor for m, v in table.values[column].items() if pd.notna(v)}


_SHOWN = ["n_models", "pearson_r", "pearson_p", "spearman_rho", "spearman_p"]


def correlation_table(tables: Iterable[Table], top1: Mapping[str, float], n_resamples: int = 0,
                      seed: int = 0) -> Table:
    """One row per (table, column) of scores that has a model with an ImageNet top-1: how well
    top-1 predicts it, with bootstrap intervals over models for r and rho when ``n_resamples``
    > 0. Columns without such a model are named in a note, not shown as a row of dashes."""
    rows = []
    empty = []
    for table in tables:
        for column in table.percent_columns:
            scores = column_scores(table, column)
            if not any(m in top1 for m in scores):
                empty.append(f"{table.name} / {column}")  # nothing to correlate: no row
                continue
            result = correlate(top1, scores, n_resamples, seed)
            rows.append({"table": table.name, "column": column, **result.__dict__})
    values = pd.DataFrame(rows, columns=["table", "column", *Correlation.__dataclass_fields__])
    values.index = [f"{t} / {c}" for t, c in zip(values["table"], values["column"], strict=True)]
    values.index.name = "table / column"
    low = pd.DataFrame({"pearson_r": values["pearson_low"], "spearman_rho": values["spearman_low"]})
    high = pd.DataFrame({"pearson_r": values["pearson_high"],
                         "spearman_rho": values["spearman_high"]})
    notes = []
    if empty:
        notes.append(f"left out, no model with an ImageNet top-1: {', '.join(empty)} (the "
                     "paper's models have one; give others with --imagenet-top1 NAME=VALUE)")
    if n_resamples > 0 and rows:
        notes.append(f"[low, high]: 95% percentile interval over {n_resamples} resampled sets of "
                     "models (drawn with replacement)")
    return Table("correlation", "Correlation with ImageNet top-1 (logit-transformed scores)",
                 values[_SHOWN], low, high,
                 decimals={"n_models": 0, "pearson_r": 3, "pearson_p": 4, "spearman_rho": 3,
                           "spearman_p": 4}, notes=notes, interval_style="range")
