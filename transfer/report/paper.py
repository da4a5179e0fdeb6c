"""The paper's published tables (``transfer/paper/``) and ours set beside them."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from transfer.report.tables import Table, dataset_order

PAPER_DIR = Path(__file__).resolve().parent.parent / "paper"


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
