"""The paper's tables (models x datasets, averages, detection, dense, calibration) as ``Table``s."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from datasets.registry import DATASETS
from models.registry import MODELS, PAPER_MODELS
from transfer.report.gather import (
    DETECTION_METRICS,
    DETECTION_MODES,
    NORMALS_KEYS,
    SEGMENTATION_KEYS,
    Results,
)

# Columns of the dense table that are scores, with the factor that makes them percentages
# (angle errors in degrees have no logit, so they are not correlated).
DENSE_PERCENT = {"normals_within_11.25": 1.0, "normals_within_22.5": 1.0,
                 "normals_within_30": 1.0, "seg_miou": 100.0, "seg_pixel_acc": 1.0}


def model_order(models: Iterable[str]) -> list[str]:
    """The paper's order (by ImageNet top-1), then other registered models, then the rest."""
    models = set(models)
    known = [m for m in (*PAPER_MODELS, *MODELS) if m in models]
    return list(dict.fromkeys(known)) + sorted(models - set(known))


def dataset_order(datasets: Iterable[str]) -> list[str]:
    """The registry's order (the paper's), unknown names last."""
    datasets = set(datasets)
    return [d for d in DATASETS if d in datasets] + sorted(datasets - set(DATASETS))


@dataclass
class Table:
    """One table: values indexed by model, optional 95% CIs, and how to read its columns."""

    name: str
    title: str
    values: pd.DataFrame
    ci95: pd.DataFrame | None = None
    decimals: dict[str, int] = field(default_factory=dict)
    percent_columns: dict[str, float] = field(default_factory=dict)  # to correlate: x factor
    heatmap: bool = False

    def csv_frame(self) -> pd.DataFrame:
        """Values, each CI column after its value column."""
        frame = self.values.copy()
        if self.ci95 is not None:
            for column in self.ci95.columns:
                frame.insert(frame.columns.get_loc(column) + 1, f"{column}_ci95",
                             self.ci95[column])
        return frame

    def cell(self, row: Any, column: str) -> str:
        value = self.values.at[row, column]
        if pd.isna(value):
            return "-"
        if isinstance(value, str):
            return value
        text = f"{value:.{self.decimals.get(column, 2)}f}"
        if self.ci95 is not None and column in self.ci95.columns and pd.notna(
                self.ci95.at[row, column]):
            text += f" ± {self.ci95.at[row, column]:.2f}"
        return text

    def markdown(self) -> str:
        index_name = self.values.index.name or ""
        header = [index_name, *map(str, self.values.columns)]
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join([" --- "] + [" ---: "] * len(self.values.columns)) + "|"]
        for row in self.values.index:
            cells = [str(row), *(self.cell(row, c) for c in self.values.columns)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def add_averages(table: pd.DataFrame, groups: Mapping[str, list[str]]) -> pd.DataFrame:
    """One average column per group of dataset columns; NaN where a model misses one of them,
    so an average always covers the same datasets for every model (as in the paper)."""
    table = table.copy()
    for name, columns in groups.items():
        present = [c for c in columns if c in table.columns]
        if present:
            table[name] = table[present].mean(axis=1, skipna=False)
    return table


def _pivot(rows: pd.DataFrame, value: str) -> pd.DataFrame:
    table = rows.pivot(index="model", columns="dataset", values=value)
    table = table.reindex(index=model_order(table.index), columns=dataset_order(table.columns))
    table.columns.name = None
    table.index.name = "model"
    return table.astype(float)


def score_tables(scores: pd.DataFrame) -> list[Table]:
    """Many-shot linear, finetune and kNN (with the average), then one few-shot table per shot
    count (averages over the many-shot and the cross-domain sets apart, as the paper's Tables
    2-3). The paper has no kNN, so ``--paper`` has nothing to set beside that table."""
    tables = []
    for protocol, title in (("linear", "Many-shot linear evaluation"),
                            ("finetune", "Many-shot finetuning"),
                            ("knn", "Many-shot weighted kNN (k chosen on val)")):
        rows = scores[scores["protocol"] == protocol]
        if len(rows):
            values = _pivot(rows, "score")
            values = add_averages(values, {"average": list(values.columns)})
            tables.append(Table(protocol, title, values,
                                percent_columns={c: 1.0 for c in values.columns}, heatmap=True))
    few = scores[scores["protocol"] == "few_shot"].dropna(subset=["n_way", "n_support"])
    shots = sorted({(int(w), int(k)) for w, k in zip(few["n_way"], few["n_support"], strict=True)})
    for n_way, n_support in shots:
        rows = few[(few["n_way"] == n_way) & (few["n_support"] == n_support)]
        values = _pivot(rows, "score")
        ci95 = _pivot(rows, "ci95")
        values = add_averages(values, {
            "average_many_shot": [c for c in values.columns
                                  if c in DATASETS and not DATASETS[c].few_shot_only],
            "average_cross_domain": [c for c in values.columns
                                     if c in DATASETS and DATASETS[c].few_shot_only]})
        tables.append(Table(f"few_shot_{n_way}way{n_support}shot",
                            f"Few-shot, {n_way}-way {n_support}-shot (ProtoNet)", values, ci95,
                            percent_columns={c: 1.0 for c in values.columns}, heatmap=True))
    return tables


def detection_table(detection: pd.DataFrame) -> Table | None:
    """VOC07 test AP / AP50 / AP75 of frozen and finetuned backbones (the paper's Table 4)."""
    if detection.empty:
        return None
    long = detection.melt(id_vars=["model", "mode"], value_vars=list(DETECTION_METRICS))
    long["column"] = long["mode"] + "_" + long["variable"].str.lower()
    values = long.pivot(index="model", columns="column", values="value")
    order = [f"{mode}_{m.lower()}" for mode in DETECTION_MODES for m in DETECTION_METRICS]
    values = values.reindex(index=model_order(values.index),
                            columns=[c for c in order if c in values.columns]).astype(float)
    values.columns.name, values.index.name = None, "model"
    return Table("detection", "Detection (VOC07 test, Faster R-CNN R50-FPN)", values,
                 percent_columns={c: 1.0 for c in values.columns})


def dense_table(dense: pd.DataFrame) -> Table | None:
    """Surface normals and segmentation (Table 5), in the paper's units (mIoU a fraction)."""
    if dense.empty:
        return None
    columns = [c for c in (*NORMALS_KEYS, *SEGMENTATION_KEYS) if c in dense.columns]
    values = dense.reindex(index=model_order(dense.index), columns=columns).astype(float)
    values = values.dropna(axis=1, how="all")
    values.index.name = "model"
    return Table("dense", "Dense prediction (NYUv2 normals, ADE20K segmentation)", values,
                 decimals={"seg_miou": 4},
                 percent_columns={c: f for c, f in DENSE_PERCENT.items() if c in values.columns})


def calibration_table(scores: pd.DataFrame) -> Table | None:
    """Mean ECE over the datasets that have one (all but multi-label VOC07), per protocol, before
    and after temperature scaling (Table 9); NaN where a model misses one of those datasets."""
    parts = {}
    for protocol in ("linear", "finetune"):
        rows = scores[(scores["protocol"] == protocol) & scores["ece"].notna()]
        for key in ("ece", "ece_scaled"):
            if len(rows):
                parts[f"{protocol}_{key}"] = _pivot(rows, key).mean(axis=1, skipna=False)
    if not parts:
        return None
    values = pd.DataFrame(parts)
    values = values.reindex(index=model_order(values.index))
    values.index.name = "model"
    return Table("calibration", "Calibration: mean ECE (%, 15 bins) unscaled / temperature-scaled",
                 values)


def build_tables(results: Results) -> list[Table]:
    tables = score_tables(results.scores)
    for table in (detection_table(results.detection), dense_table(results.dense),
                  calibration_table(results.scores)):
        if table is not None:
            tables.append(table)
    return tables
