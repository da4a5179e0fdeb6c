"""The paper's tables, correlations with ImageNet top-1, and plots, from the results JSON files.

``gather_results`` reads ``results/<protocol>/*.json`` into pandas frames; ``build_tables`` turns
them into the paper's tables (models x datasets and averages); ``correlation_table`` correlates
each column with ImageNet top-1 on logit-transformed scores, as the paper does; ``write_report``
writes everything as Markdown, CSV and PNG.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from datasets.registry import DATASETS
from models.registry import MODELS, PAPER_MODELS
from transfer.atomic import atomic_path
from transfer.errors import TransferError

PAPER_DIR = Path(__file__).resolve().parent / "paper"
SCORE_PROTOCOLS = ("linear", "few_shot", "finetune", "knn")
DETECTION_MODES = ("frozen", "finetune")
DETECTION_METRICS = ("AP", "AP50", "AP75")
# Our column (the paper's CSV name) -> the key the dense scripts write (transfer/dense/).
NORMALS_KEYS = {"normals_mean_err": "mean_angle_error", "normals_median_err": "median_angle_error",
                "normals_within_11.25": "within_11.25", "normals_within_22.5": "within_22.5",
                "normals_within_30": "within_30"}
SEGMENTATION_KEYS = {"seg_miou": "miou", "seg_pixel_acc": "pixel_accuracy"}
# Columns of the dense table that are scores, with the factor that makes them percentages
# (angle errors in degrees have no logit, so they are not correlated).
DENSE_PERCENT = {"normals_within_11.25": 1.0, "normals_within_22.5": 1.0,
                 "normals_within_30": 1.0, "seg_miou": 100.0, "seg_pixel_acc": 1.0}
LOGIT_EPS = 1e-6  # a score of exactly 0 or 100% has no logit; clip it this close


class ReportError(TransferError, ValueError):
    """The results folder is missing or holds no result files."""


# ----------------------------------------------------------------------------- gathering


@dataclass
class Results:
    """Every record found: scored protocols, detection runs and dense runs, one row each."""

    scores: pd.DataFrame
    detection: pd.DataFrame
    dense: pd.DataFrame
    files: int = 0
    problems: list[str] = field(default_factory=list)


_SCORE_COLUMNS = ["protocol", "model", "dataset", "metric", "score", "ci95", "n_way", "n_support",
                  "ece", "ece_scaled", "file", "canonical", "created"]


def _read_records(folder: Path, problems: list[str]) -> list[tuple[Path, dict[str, Any]]]:
    """The JSON objects directly in ``folder`` (not its per-run subfolders, not temp files)."""
    if not folder.is_dir():
        return []
    records = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            problems.append(f"{path}: not readable JSON ({error})")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("model"), str):
            problems.append(f"{path}: expected a JSON object with a 'model' name")
            continue
        records.append((path, record))
    return records


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _score_row(protocol: str, path: Path, record: dict[str, Any],
               problems: list[str]) -> dict[str, Any] | None:
    if not isinstance(record.get("dataset"), str) or math.isnan(_number(record.get("score"))):
        problems.append(f"{path}: expected 'dataset' and a numeric 'score'")
        return None
    if protocol == "finetune" and record.get("stage", "final") != "final":
        return None
    scaled = record.get("ece_temperature_scaled", record.get("ece_scaled"))  # (older linear)
    return {"protocol": protocol, "model": record["model"], "dataset": record["dataset"],
            "metric": record.get("metric"), "score": _number(record["score"]),
            "ci95": _number(record.get("ci95")), "n_way": record.get("n_way"),
            "n_support": record.get("n_support"), "ece": _number(record.get("ece")),
            "ece_scaled": _number(scaled), "file": str(path),
            "canonical": path.stem == f"{record['model']}__{record['dataset']}",
            "created": str(record.get("created", ""))}


def _nested(record: dict[str, Any], key: str) -> Any:
    """``record[key]``, or the same key one level down (e.g. under ``metrics``)."""
    if key in record:
        return record[key]
    for value in record.values():
        if isinstance(value, dict) and key in value:
            return value[key]
    return None


def gather_results(results_dir: str | Path) -> Results:
    """Read every result JSON under ``results_dir`` (the layout of ``transfer.results``)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise ReportError(f"{root}: no such results folder (run sweep.py or a protocol script "
                          "first, or pass --results)")
    problems: list[str] = []
    files = 0
    rows = []
    for protocol in SCORE_PROTOCOLS:
        for path, record in _read_records(root / protocol, problems):
            files += 1
            if (row := _score_row(protocol, path, record, problems)) is not None:
                rows.append(row)
    scores = pd.DataFrame(rows, columns=_SCORE_COLUMNS)
    # One record per cell: the canonically named file first, then the newest.
    scores = (scores.sort_values(["canonical", "created"], ascending=False)
              .drop_duplicates(["protocol", "model", "dataset", "n_way", "n_support"])
              .sort_index())

    detection_rows = []
    for path, record in _read_records(root / "detection", problems):
        files += 1
        mode = record.get("mode")
        if mode not in DETECTION_MODES:
            problems.append(f"{path}: 'mode' should be one of {', '.join(DETECTION_MODES)}")
            continue
        detection_rows.append({"model": record["model"], "mode": mode,
                               **{m: _number(record.get(m)) for m in DETECTION_METRICS}})
    detection = pd.DataFrame(detection_rows, columns=["model", "mode", *DETECTION_METRICS])

    dense: dict[str, dict[str, float]] = {}
    for task, keys in (("normals", NORMALS_KEYS), ("segmentation", SEGMENTATION_KEYS)):
        for path, record in _read_records(root / task, problems):
            files += 1
            values = {column: _number(_nested(record, key)) for column, key in keys.items()}
            if all(math.isnan(v) for v in values.values()):
                problems.append(f"{path}: none of the keys {', '.join(keys.values())}")
                continue
            dense.setdefault(record["model"], {}).update(values)
    dense_frame = pd.DataFrame.from_dict(dense, orient="index")
    dense_frame.index.name = "model"
    if files == 0:
        protocols = ", ".join((*SCORE_PROTOCOLS, "detection", "normals", "segmentation"))
        raise ReportError(f"{root}: no result files (expected <protocol>/*.json for protocols "
                          f"{protocols})")
    return Results(scores, detection, dense_frame, files, problems)


# ----------------------------------------------------------------------------- tables


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


# ----------------------------------------------------------------------------- the paper


def load_paper_tables(paper_dir: str | Path = PAPER_DIR) -> dict[str, pd.DataFrame]:
    """The paper's tables, keyed by our table names, indexed by model."""
    paper_dir = Path(paper_dir)

    def read(name: str) -> pd.DataFrame:
        return pd.read_csv(paper_dir / name, index_col="model")

    few = pd.concat([pd.read_csv(paper_dir / f"few_shot_20shot_{part}.csv")
                     for part in ("many", "cdfsl")])
    few_wide = few.pivot(index="model", columns="dataset", values="accuracy")
    few_wide = few_wide.reindex(columns=dataset_order(few_wide.columns))
    few_wide.columns.name = None
    return {"linear": read("linear.csv"), "finetune": read("finetune.csv"),
            "few_shot_5way20shot": few_wide, "detection": read("detection.csv"),
            "dense": read("dense.csv"), "calibration": read("calibration.csv")}


def compare_with_paper(table: Table, paper: pd.DataFrame) -> Table | None:
    """Ours, the paper's and ours minus the paper's, for every cell both have."""
    rows = []
    for model in table.values.index:
        if model not in paper.index:
            continue
        for column in table.values.columns:
            ours = table.values.at[model, column]
            theirs = paper.at[model, column] if column in paper.columns else math.nan
            if pd.notna(ours) and pd.notna(theirs):
                rows.append({"model": model, "column": column, "ours": float(ours),
                             "paper": float(theirs), "difference": float(ours - theirs)})
    if not rows:
        return None
    values = pd.DataFrame(rows)
    values.index = [f"{m} / {c}" for m, c in zip(values["model"], values["column"], strict=True)]
    values.index.name = "model / column"
    digits = max([2, *table.decimals.values()])  # e.g. 4 for the dense table's mIoU fraction
    return Table(f"{table.name}_vs_paper", f"{table.title}: ours beside the paper's",
                 values[["ours", "paper", "difference"]],
                 decimals={"ours": digits, "paper": digits, "difference": digits})


# ----------------------------------------------------------------------------- correlation


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
    n_models: int
    pearson_r: float = math.nan
    pearson_p: float = math.nan
    spearman_rho: float = math.nan
    spearman_p: float = math.nan


def correlate(top1: Mapping[str, float], scores: Mapping[str, float]) -> Correlation:
    """Pearson and Spearman of logit(top-1) against logit(score) over the models with both;
    needs three models, and is NaN when either side is constant."""
    models = [m for m in scores if m in top1 and pd.notna(scores[m])]
    if len(models) < 3:
        return Correlation(len(models))
    x = logit_percent([top1[m] for m in models])
    y = logit_percent([scores[m] for m in models])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: scipy warns and returns NaN
        pearson = stats.pearsonr(x, y)
        spearman = stats.spearmanr(x, y)
    return Correlation(len(models), float(pearson.statistic), float(pearson.pvalue),
                       float(spearman.statistic), float(spearman.pvalue))


def _column_scores(table: Table, column: str) -> dict[str, float]:
    factor = table.percent_columns[column]
    return {m: float(v) * factor for m, v in table.values[column].items() if pd.notna(v)}


def correlation_table(tables: Iterable[Table], top1: Mapping[str, float]) -> Table:
    """One row per (table, column) of scores: how well ImageNet top-1 predicts it."""
    rows = []
    for table in tables:
        for column in table.percent_columns:
            result = correlate(top1, _column_scores(table, column))
            rows.append({"table": table.name, "column": column, **result.__dict__})
    values = pd.DataFrame(rows, columns=["table", "column", *Correlation.__dataclass_fields__])
    values.index = [f"{t} / {c}" for t, c in zip(values["table"], values["column"], strict=True)]
    values.index.name = "table / column"
    values = values.drop(columns=["table", "column"])
    return Table("correlation", "Correlation with ImageNet top-1 (logit-transformed scores)",
                 values, decimals={"n_models": 0, "pearson_r": 3, "pearson_p": 4,
                                   "spearman_rho": 3, "spearman_p": 4})


# ----------------------------------------------------------------------------- plots


def _figure(width: float, height: float):
    # The object API, not pyplot: no global figure state, no GUI backend needed.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def plot_correlations(table: Table, top1: Mapping[str, float], path: Path) -> Path:
    """ImageNet top-1 against each score column, with the line fitted in logit space and r."""
    columns = list(table.percent_columns)
    ncols = min(4, len(columns))
    nrows = math.ceil(len(columns) / ncols)
    figure = _figure(3.6 * ncols, 3.0 * nrows)
    figure.suptitle(f"{table.title}: transfer vs ImageNet top-1")
    for i, column in enumerate(columns):
        axes = figure.add_subplot(nrows, ncols, i + 1)
        scores = _column_scores(table, column)
        models = [m for m in scores if m in top1]
        result = correlate(top1, scores)
        axes.scatter([top1[m] for m in models], [scores[m] for m in models], s=14)
        for m in models:
            axes.annotate(m, (top1[m], scores[m]), fontsize=5, xytext=(2, 2),
                          textcoords="offset points")
        if result.n_models >= 3:
            x = logit_percent([top1[m] for m in models])
            y = logit_percent([scores[m] for m in models])
            slope, intercept = np.polyfit(x, y, 1)
            grid = np.linspace(min(top1[m] for m in models), max(top1[m] for m in models), 50)
            fitted = 100.0 / (1.0 + np.exp(-(slope * logit_percent(grid) + intercept)))
            axes.plot(grid, fitted, color="tab:red", linewidth=1)
            axes.set_title(f"{column}\nr = {result.pearson_r:.2f}, "
                           f"ρ = {result.spearman_rho:.2f} (n={result.n_models})", fontsize=8)
        else:
            axes.set_title(f"{column} (n={result.n_models}: too few models for r)", fontsize=8)
            if not models:
                axes.text(0.5, 0.5, "no model with an\nImageNet top-1", ha="center",
                          va="center", transform=axes.transAxes, fontsize=8)
        axes.set_xlabel("ImageNet top-1 (%)", fontsize=7)
        axes.set_ylabel(f"{column} (%)", fontsize=7)
        axes.tick_params(labelsize=6)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def plot_heatmap(table: Table, path: Path) -> Path:
    """Models x datasets, each cell coloured and labelled with its score."""
    values = table.values
    data = np.ma.masked_invalid(values.to_numpy(dtype=float))
    figure = _figure(2.0 + 0.75 * len(values.columns), 1.5 + 0.35 * len(values.index))
    axes = figure.add_subplot()
    image = axes.imshow(data, cmap="viridis", aspect="auto")
    figure.colorbar(image, ax=axes, shrink=0.8)
    axes.set_xticks(range(len(values.columns)), labels=list(values.columns), rotation=45,
                    ha="right", fontsize=7)
    axes.set_yticks(range(len(values.index)), labels=list(values.index), fontsize=7)
    finite = data.compressed()
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if data.mask is np.ma.nomask or not data.mask[i, j]:
                axes.text(j, i, f"{data[i, j]:.1f}", ha="center", va="center", fontsize=6,
                          color="black" if data[i, j] > middle else "white")
    axes.set_title(table.title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


# ----------------------------------------------------------------------------- writing


def _write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def write_table(table: Table, folder: Path) -> list[Path]:
    """``<name>.csv`` (full precision) and ``<name>.md`` in ``folder``."""
    csv = _write_text(folder / f"{table.name}.csv", table.csv_frame().to_csv())
    markdown = _write_text(folder / f"{table.name}.md", f"## {table.title}\n\n"
                           f"{table.markdown()}\n")
    return [csv, markdown]


@dataclass
class Report:
    """What ``write_report`` produced."""

    tables: list[Table]
    correlation: Table
    comparisons: list[Table]
    files: list[Path]
    problems: list[str]


def write_report(results_dir: str | Path, out_dir: str | Path, paper: bool = False,
                 extra_top1: Mapping[str, float] | None = None) -> Report:
    """Gather the results, write tables (Markdown + CSV), the correlation table, the plots and
    ``report.md`` that shows them all; with ``paper``, the paper's numbers beside ours.
    ``extra_top1`` adds ImageNet top-1 values of other models (by result label) to the
    correlations; models without one are tabulated but left out of them."""
    out = Path(out_dir)
    results = gather_results(results_dir)
    tables = build_tables(results)
    top1 = imagenet_top1(extra_top1)
    correlation = correlation_table(tables, top1)
    comparisons = []
    if paper:
        reference = load_paper_tables()
        comparisons = [c for t in tables if t.name in reference
                       if (c := compare_with_paper(t, reference[t.name])) is not None]
    files: list[Path] = []
    sections = [f"# Transfer results\n\n{results.files} result files from `{results_dir}`.\n"]
    for table in [*tables, *comparisons, correlation]:
        files += write_table(table, out / "tables")
        sections.append(f"## {table.title}\n\n{table.markdown()}\n\n"
                        f"[CSV](tables/{table.name}.csv)\n")
        if table.percent_columns:
            plot = plot_correlations(table, top1, out / "plots" / f"{table.name}_vs_imagenet.png")
            files.append(plot)
            sections.append(f"![{table.name} vs ImageNet top-1](plots/{plot.name})\n")
        if table.heatmap:
            plot = plot_heatmap(table, out / "plots" / f"{table.name}_heatmap.png")
            files.append(plot)
            sections.append(f"![{table.name} heatmap](plots/{plot.name})\n")
    if results.problems:
        sections.append("## Files left out\n\n" + "\n".join(f"- {p}" for p in results.problems)
                        + "\n")
    files.append(_write_text(out / "report.md", "\n".join(sections)))
    return Report(tables, correlation, comparisons, files, results.problems)
