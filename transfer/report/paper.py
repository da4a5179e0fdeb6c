"""The paper's published tables (``transfer/report/paper_tables/``) and ours set beside them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from transfer.report.tables import Table, average_groups, dataset_order

PAPER_DIR = Path(__file__).resolve().parent / "paper_tables"


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


def paper_cells(table: Table, paper: pd.DataFrame) -> tuple[list[dict[str, Any]], list[str]]:
    """Every cell of ``table`` that the paper has too: model, column, ours, our interval (low,
    high), the paper's number, ours minus the paper's, and whether the paper's number lies in
    our interval (``yes``/``no``; ``-`` without one). An average column of ours counts only when
    it covers the paper's full dataset list: a mean over part of the datasets is never set
    against the paper's mean over all of them. Returns the cells and notes on what was not
    compared."""
    rows = []
    notes = []
    groups = average_groups(table.name)
    partial = [c for c, datasets in groups.items()
               if tuple(table.averaged.get(c, ())) != tuple(datasets)]
    columns = [c for c in table.values.columns if c not in partial]
    for column in partial:
        if column in paper.columns:
            covered = sum(d in table.values.columns for d in groups[column])
            notes.append(f"{column} not compared: ours covers {covered} of the paper's "
                         f"{len(groups[column])} datasets")
    for model in table.values.index:
        if model not in paper.index:
            continue
        for column in columns:
            ours = table.values.at[model, column]
            theirs = paper.at[model, column] if column in paper.columns else math.nan
            if pd.notna(ours) and pd.notna(theirs):
                interval = table.interval(model, column)
                low, high = interval if interval is not None else (math.nan, math.nan)
                inside = "-" if interval is None else ("yes" if low <= theirs <= high else "no")
                rows.append({"model": model, "column": column, "ours": float(ours),
                             "low": low, "high": high, "paper": float(theirs),
                             "difference": float(ours - theirs), "paper_in_our_interval": inside})
    return rows, notes


def compare_with_paper(table: Table, paper: pd.DataFrame) -> Table | None:
    """Ours (with our interval), the paper's, ours minus the paper's, and whether the paper's
    number lies in our interval, for every cell both have (``paper_cells``)."""
    rows, notes = paper_cells(table, paper)
    if not rows:
        return None
    values = pd.DataFrame(rows)
    values.index = [f"{m} / {c}" for m, c in zip(values["model"], values["column"], strict=True)]
    values.index.name = "model / column"
    digits = max([2, *table.decimals.values()])  # e.g. 4 for the dense table's mIoU fraction
    low = values[["low"]].rename(columns={"low": "ours"})
    high = values[["high"]].rename(columns={"high": "ours"})
    inside = values["paper_in_our_interval"]
    if (inside != "-").any():
        notes.append(f"the paper's number lies in our 95% interval in {(inside == 'yes').sum()} "
                     f"of {(inside != '-').sum()} cells with an interval")
    return Table(f"{table.name}_vs_paper", f"{table.title}: ours beside the paper's",
                 values[["ours", "paper", "difference", "paper_in_our_interval"]], low, high,
                 decimals={"ours": digits, "paper": digits, "difference": digits}, notes=notes)
