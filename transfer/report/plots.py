"""PNG figures: scores against ImageNet top-1, and heatmaps of the tables."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from transfer.atomic import atomic_path
from transfer.report.correlation import column_scores, correlate, logit_percent
from transfer.report.tables import Table


def _figure(width: float, height: float):
    # The object API, not pyplot: no global figure state, no GUI backend needed.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _error_bars(axes, table: Table, column: str, x: Mapping[str, float],
                y: Mapping[str, float]) -> None:
    """Vertical bars of the 95% interval of each point that has one."""
    factor = table.percent_columns.get(column, 1.0)
    bars = {m: table.interval(m, column) for m in x}
    bars = {m: (low * factor, high * factor) for m, b in bars.items() if b is not None
            for low, high in [b]}
    if bars:
        models = list(bars)
        axes.errorbar([x[m] for m in models], [y[m] for m in models],
                      yerr=[[y[m] - bars[m][0] for m in models],
                            [bars[m][1] - y[m] for m in models]],
                      fmt="none", ecolor="tab:blue", elinewidth=0.8, capsize=2)


def plot_correlations(table: Table, top1: Mapping[str, float], path: Path) -> Path:
    """ImageNet top-1 against each score column, with the line fitted in logit space and r."""
    columns = list(table.percent_columns)
    ncols = min(4, len(columns))
    nrows = math.ceil(len(columns) / ncols)
    figure = _figure(3.6 * ncols, 3.0 * nrows)
    figure.suptitle(f"{table.title}: transfer vs ImageNet top-1")
    for i, column in enumerate(columns):
        axes = figure.add_subplot(nrows, ncols, i + 1)
        scores = column_scores(table, column)
        models = [m for m in scores if m in top1]
        result = correlate(top1, scores)
        axes.scatter([top1[m] for m in models], [scores[m] for m in models], s=14)
        _error_bars(axes, table, column, {m: top1[m] for m in models}, scores)
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
