"""Per-dataset figures of a table: the forest plot of the models' scores with their 95% intervals,
and the matrix of the paired comparisons' Holm-corrected p-values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from transfer.report.plots import FONT, new_figure, shown, wrapped
from transfer.report.tables import Table
from transfer.stats.comparisons import ALPHA

ROW = 0.3  # inches per model: rows of 9 pt labels never touch
CELL = 0.5  # inches per model of the pairs matrix


def forest_order(table: Table, column: str) -> list[str]:
    """The models with a score in ``column``, best first (ties in the table's order)."""
    scores = table.values[column].dropna()
    return list(scores.sort_values(ascending=False, kind="stable").index)


def forest_figure(table: Table, column: str, names: Mapping[str, str] | None = None,
                  unit: str = "score (%)"):
    """Each model's score on ``column`` with its 95% interval, best at the top; models tied
    with the best (not significantly worse) filled, the others hollow (the page's caption says
    so: a legend inside would crowd a plot of one model). None without a score."""
    order = forest_order(table, column)
    if not order:
        return None
    width = 4.8
    figure = new_figure(width, 0.9 + ROW * len(order))
    axes = figure.add_axes((0.1, 0.12, 0.85, 0.76))
    y = np.arange(len(order))[::-1]
    scores = np.array([table.values.at[m, column] for m in order], dtype=float)
    intervals = [table.interval(m, column) for m in order]
    has = np.array([i is not None for i in intervals])
    if has.any():
        low = np.array([scores[k] - i[0] for k, i in enumerate(intervals) if i is not None])
        high = np.array([i[1] - scores[k] for k, i in enumerate(intervals) if i is not None])
        axes.errorbar(scores[has], y[has], xerr=[low, high], fmt="none", ecolor="0.35",
                      elinewidth=1.2, capsize=3)
    tied = np.array([table.tied is not None and column in table.tied.columns
                     and bool(table.tied.at[m, column]) for m in order])
    axes.scatter(scores[tied], y[tied], s=36, color="tab:blue", zorder=3)
    axes.scatter(scores[~tied], y[~tied], s=36, facecolors="white", edgecolors="tab:blue",
                 zorder=3)
    axes.set_yticks(y, labels=[shown(names, m) for m in order], fontsize=FONT)
    axes.set_ylim(-0.7, len(order) - 0.3)
    axes.set_xlabel(unit, fontsize=FONT)
    axes.tick_params(axis="x", labelsize=FONT - 1)
    axes.grid(axis="x", color="0.9", linewidth=0.6)
    axes.set_axisbelow(True)
    what = "95% intervals" if has.any() else "no intervals in these records"
    axes.set_title(wrapped(f"{table.title}: {column} ({what})", width), fontsize=FONT + 1)
    return figure


def _p_text(p: float) -> str:
    if p < 0.001:
        return "<.001"
    return f"{p:.3f}".lstrip("0") if p < 1 else "1"


def pairs_matrix(pairs: Table, dataset: str, order: Sequence[str]) -> pd.DataFrame:
    """Holm-corrected p-values of ``dataset``'s pairs as a symmetric models x models frame in
    ``order`` (NaN on the diagonal and for models not compared)."""
    matrix = pd.DataFrame(np.nan, index=list(order), columns=list(order))
    if pairs.keys is None:
        return matrix
    rows = pairs.keys[pairs.keys["dataset"] == dataset]
    for key, row in rows.iterrows():
        a, b = row["model_a"], row["model_b"]
        if a in matrix.index and b in matrix.index:
            p = float(pairs.values.at[key, "p_holm"])
            matrix.at[a, b] = matrix.at[b, a] = p
    return matrix


def pairs_figure(pairs: Table, dataset: str, order: Sequence[str],
                 names: Mapping[str, str] | None = None):
    """The Holm-corrected p-value of every pair of models on ``dataset`` as a heatmap (darker:
    smaller p; bold: below alpha), models in ``order``. None with fewer than two compared
    models."""
    matrix = pairs_matrix(pairs, dataset, order)
    keep = [m for m in order if matrix.loc[m].notna().any()]
    if len(keep) < 2:
        return None
    matrix = matrix.loc[keep, keep]
    side = CELL * len(keep)  # cells of a fixed size in inches: "<.001" always fits
    width, height = side + 1.2, side + 0.6
    figure = new_figure(width, height)
    axes = figure.add_axes((0.2 / width, 0.2 / height, side / width, side / height))
    bar = figure.add_axes(((0.45 + side) / width, 0.2 / height, 0.15 / width, side / height))
    strength = -np.log10(np.clip(matrix.to_numpy(dtype=float), 1e-3, 1.0))
    image = axes.imshow(np.ma.masked_invalid(strength), cmap="Greens", vmin=0.0, vmax=3.0)
    colorbar = figure.colorbar(image, cax=bar)
    ticks = [0.0, -np.log10(ALPHA), 2.0, 3.0]
    colorbar.set_ticks(ticks, labels=["1", f"{ALPHA:g}", "0.01", "≤0.001"])
    colorbar.ax.tick_params(labelsize=FONT - 1)
    colorbar.set_label("p (Holm)", fontsize=FONT - 1)
    labels = [shown(names, m) for m in keep]
    axes.set_xticks(range(len(keep)), labels=labels, rotation=45, ha="right",
                    rotation_mode="anchor", fontsize=FONT)
    axes.set_yticks(range(len(keep)), labels=labels, fontsize=FONT)
    for i in range(len(keep)):
        for j in range(len(keep)):
            p = matrix.iat[i, j]
            if pd.notna(p):
                axes.text(j, i, _p_text(p), ha="center", va="center", fontsize=FONT - 1,
                          color="white" if strength[i, j] > 2.0 else "black",
                          fontweight="bold" if p < ALPHA else "normal")
    axes.set_title(wrapped(f"{dataset}: paired comparisons, Holm-corrected p (bold: < {ALPHA})",
                           width), fontsize=FONT + 1)
    return figure
