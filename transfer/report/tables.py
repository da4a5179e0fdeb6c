"""The paper's tables (models x datasets, averages, detection, dense, calibration) as ``Table``s."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from datasets.registry import CROSS_DOMAIN, DATASETS, MANY_SHOT
from models.registry import MODELS, PAPER_MODELS
from transfer.report.gather import (
    DETECTION_METRICS,
    DETECTION_MODES,
    NORMALS_KEYS,
    SEGMENTATION_KEYS,
    Results,
    provenance_warnings,
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
    """One table: values indexed by model, optional 95% intervals, and how to read its columns.

    ``low`` / ``high`` hold interval bounds for the cells that have one; ``tied`` marks, per
    column, the cells whose model is not significantly worse than the column's best;
    ``rank`` / ``rank_low`` / ``rank_high`` give each model's rank and its bootstrap interval;
    ``averaged`` names the datasets behind each average column; ``notes`` explain what the
    table leaves out.
    """

    name: str
    title: str
    values: pd.DataFrame
    low: pd.DataFrame | None = None
    high: pd.DataFrame | None = None
    decimals: dict[str, int] = field(default_factory=dict)
    percent_columns: dict[str, float] = field(default_factory=dict)  # to correlate: x factor
    heatmap: bool = False
    averaged: dict[str, tuple[str, ...]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tied: pd.DataFrame | None = None
    rank: pd.DataFrame | None = None  # columns: rank, low, high (1 = best)
    rank_title: str = "rank [95%]"
    interval_style: str = "pm"  # "pm": value ± half-width; "range": value [low, high]
    #: per row, the parts its index joins (e.g. dataset, model_a, model_b of a pairs table)
    keys: pd.DataFrame | None = None
    #: the gathered records behind the cells (model, dataset, file, provenance, ...), if any
    records: pd.DataFrame | None = None

    def interval(self, row: Any, column: str) -> tuple[float, float] | None:
        """The cell's interval (low, high), or None where it has none."""
        if self.low is None or self.high is None or column not in self.low.columns:
            return None
        if row not in self.low.index:
            return None
        low, high = self.low.at[row, column], self.high.at[row, column]
        if pd.isna(low) or pd.isna(high):
            return None
        return float(low), float(high)

    def csv_frame(self) -> pd.DataFrame:
        """Values, each interval as ``<column>_low`` and ``<column>_high`` after its column,
        then the rank and its interval."""
        frame = self.values.copy()
        if self.low is not None and self.high is not None:
            for column in self.low.columns:
                if column not in frame.columns:
                    continue
                at = frame.columns.get_loc(column) + 1
                frame.insert(at, f"{column}_low", self.low[column].reindex(frame.index))
                frame.insert(at + 1, f"{column}_high", self.high[column].reindex(frame.index))
        if self.rank is not None:
            for key in ("rank", "low", "high"):
                name = "rank" if key == "rank" else f"rank_{key}"
                frame[name] = self.rank[key].reindex(frame.index)
        return frame

    def parts(self, row: Any, column: str) -> tuple[str, str]:
        """The cell's value and its interval as text (``"85.43"``, ``"± 2.60"``); ``"-"`` and
        ``""`` for a missing value, ``""`` for a cell without an interval."""
        value = self.values.at[row, column]
        if pd.isna(value):
            return "-", ""
        if isinstance(value, str):
            return value, ""
        digits = self.decimals.get(column, 2)
        interval = ""
        if (bounds := self.interval(row, column)) is not None:
            low, high = bounds
            if self.interval_style == "range":
                interval = f"[{low:.{digits}f}, {high:.{digits}f}]"
            else:
                interval = f"± {(high - low) / 2:.{digits}f}"
        return f"{value:.{digits}f}", interval

    def is_tied(self, row: Any, column: str) -> bool:
        """Whether the cell's model is the column's best or not significantly worse."""
        return (self.tied is not None and column in self.tied.columns
                and row in self.tied.index and bool(self.tied.at[row, column]))

    def cell(self, row: Any, column: str) -> str:
        value, interval = self.parts(row, column)
        text = f"{value} {interval}" if interval else value
        return f"**{text}**" if self.is_tied(row, column) else text

    def rank_cell(self, row: Any) -> str:
        if self.rank is None or row not in self.rank.index or pd.isna(self.rank.at[row, "rank"]):
            return "-"
        rank, low, high = (self.rank.at[row, key] for key in ("rank", "low", "high"))
        return f"{rank:g} [{low:g}–{high:g}]"

    def markdown(self, names: Mapping[str, str] | None = None) -> str:
        """The table in Markdown, each row named by ``names`` (display names) where given."""
        names = names or {}
        index_name = self.values.index.name or ""
        columns = [*map(str, self.values.columns)]
        if self.rank is not None:
            columns.append(self.rank_title)
        lines = ["| " + " | ".join([index_name, *columns]) + " |",
                 "|" + "|".join([" --- "] + [" ---: "] * len(columns)) + "|"]
        for row in self.values.index:
            cells = [str(names.get(row, row)), *(self.cell(row, c) for c in self.values.columns)]
            if self.rank is not None:
                cells.append(self.rank_cell(row))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def notes_markdown(self) -> str:
        return "\n".join(f"- {note}" for note in self.notes)


def add_averages(table: pd.DataFrame, groups: Mapping[str, Sequence[str]]
                 ) -> tuple[pd.DataFrame, dict[str, tuple[str, ...]], list[str]]:
    """One average column per group, only where the table has every dataset of the group (the
    paper's full list): a mean over part of it is not comparable with the paper's, so it is left
    out and a note says why. NaN where a model misses one of the datasets, so an average always
    covers the same datasets for every model. Returns the table, the datasets behind each
    average column, and the notes."""
    table = table.copy()
    averaged: dict[str, tuple[str, ...]] = {}
    notes = []
    for name, columns in groups.items():
        present = [c for c in columns if c in table.columns]
        if not present:
            continue
        if len(present) < len(columns):
            missing = [c for c in columns if c not in table.columns]
            notes.append(f"{name} left out: {len(present)} of the paper's {len(columns)} "
                         f"datasets (missing {', '.join(missing)}); a mean over part of them "
                         "is not the paper's average")
            continue
        table[name] = table[list(columns)].mean(axis=1, skipna=False)
        averaged[name] = tuple(columns)
        incomplete = [str(m) for m in table.index[table[name].isna()]]
        if incomplete:
            notes.append(f"{name}: no value for {', '.join(incomplete)} (not every one of the "
                         f"{len(columns)} datasets)")
    return table, averaged, notes


#: Average columns of each kind of table, over the paper's full dataset lists.
SINGLE_LABEL_MANY_SHOT: tuple[str, ...] = tuple(d for d in MANY_SHOT
                                                if not DATASETS[d].multilabel)
MANY_SHOT_AVERAGES: dict[str, tuple[str, ...]] = {"average": MANY_SHOT}
FEW_SHOT_AVERAGES: dict[str, tuple[str, ...]] = {"average_many_shot": SINGLE_LABEL_MANY_SHOT,
                                                 "average_cross_domain": CROSS_DOMAIN}
#: ECE is defined for the single-label sets only (VOC07 is multi-label).
CALIBRATION_DATASETS: tuple[str, ...] = SINGLE_LABEL_MANY_SHOT


def average_groups(table_name: str) -> dict[str, tuple[str, ...]]:
    """The paper's average columns for a table of ours, each with its full dataset list."""
    if table_name.startswith("few_shot"):
        return FEW_SHOT_AVERAGES
    if table_name == "calibration":
        return {f"{protocol}_{key}": CALIBRATION_DATASETS
                for protocol in ("linear", "finetune") for key in ("ece", "ece_scaled")}
    return MANY_SHOT_AVERAGES


def _pivot(rows: pd.DataFrame, value: str) -> pd.DataFrame:
    table = rows.pivot(index="model", columns="dataset", values=value)
    table = table.reindex(index=model_order(table.index), columns=dataset_order(table.columns))
    table.columns.name = None
    table.index.name = "model"
    return table.astype(float)


def _score_table(name: str, title: str, rows: pd.DataFrame) -> Table:
    values = _pivot(rows, "score")
    low, high = _pivot(rows, "ci_low"), _pivot(rows, "ci_high")
    values, averaged, notes = add_averages(values, average_groups(name))
    return Table(name, title, values, low, high,
                 percent_columns={c: 1.0 for c in values.columns}, heatmap=True,
                 averaged=averaged, notes=notes, warnings=provenance_warnings(rows, name),
                 records=rows)


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
            tables.append(_score_table(protocol, title, rows))
    few = scores[scores["protocol"] == "few_shot"].dropna(subset=["n_way", "n_support"])
    shots = sorted({(int(w), int(k)) for w, k in zip(few["n_way"], few["n_support"], strict=True)})
    for n_way, n_support in shots:
        rows = few[(few["n_way"] == n_way) & (few["n_support"] == n_support)]
        tables.append(_score_table(f"few_shot_{n_way}way{n_support}shot",
                                   f"Few-shot, {n_way}-way {n_support}-shot (ProtoNet)", rows))
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
    """Mean ECE over the paper's single-label many-shot sets (all but multi-label VOC07), per
    protocol, before and after temperature scaling (Table 9); NaN where a model misses one of
    them. A protocol without every one of those sets gets no mean (it would not be the paper's):
    its ECEs are shown per dataset instead, as ``<protocol>_<key>_<dataset>`` columns."""
    parts: dict[str, pd.Series] = {}
    notes = []
    averaged: dict[str, tuple[str, ...]] = {}
    for protocol in ("linear", "finetune"):
        rows = scores[(scores["protocol"] == protocol) & scores["ece"].notna()]
        if not len(rows):
            continue
        for key in ("ece", "ece_scaled"):
            per_dataset = _pivot(rows, key)
            means, covered, why = add_averages(per_dataset,
                                               {f"{protocol}_{key}": CALIBRATION_DATASETS})
            if covered:
                parts[f"{protocol}_{key}"] = means[f"{protocol}_{key}"]
                averaged.update(covered)
            else:
                parts.update({f"{protocol}_{key}_{d}": per_dataset[d]
                              for d in per_dataset.columns})
            notes += [n for n in why if n not in notes]
    if not parts:
        return None
    values = pd.DataFrame(parts)
    values = values.reindex(index=model_order(values.index))
    values.index.name = "model"
    return Table("calibration", "Calibration: mean ECE (%, 15 bins) unscaled / temperature-scaled",
                 values, averaged=averaged, notes=notes)


def build_tables(results: Results) -> list[Table]:
    tables = score_tables(results.scores)
    for table in (detection_table(results.detection), dense_table(results.dense),
                  calibration_table(results.scores)):
        if table is not None:
            if (origins := results.provenance.get(table.name)) is not None:
                table.warnings = provenance_warnings(origins, table.name)
                table.records = origins
            tables.append(table)
    return tables
