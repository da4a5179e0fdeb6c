"""Figures of the report: scores against ImageNet top-1 and heatmaps of the tables, as PNG files
or inline SVG, legible at any model count and name length.

Every figure is saved with matplotlib's tight bounding box (``bbox_inches="tight"``): the saved
canvas grows to hold every title, tick label and key, however long, so nothing is ever cut at an
edge. Constrained layout is not used: with long names it shrinks axes to nothing and warns
instead, and it is slow. Titles are wrapped to the figure's width; sizes grow with the number
of models.
"""

from __future__ import annotations

import io
import logging
import re
import textwrap
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from transfer.atomic import atomic_path
from transfer.report.correlation import column_scores, correlate, logit_percent
from transfer.report.tables import Table
from transfer.stats.comparisons import LEVEL, model_resamples

log = logging.getLogger(__name__)

FONT = 9  # points: tick labels, annotations; titles are a point larger
PAD = 0.15  # inches of white around the tight bounding box
PANEL = (3.6, 3.0)  # inches per column of a correlation figure


def new_figure(width: float, height: float):
    """A figure of the object API (no pyplot: no global state, no GUI backend) on an Agg
    canvas, so that its texts can be measured. Axes are placed in inches by each plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def wrapped(text: str, width_inches: float, size: float = FONT + 1) -> str:
    """``text`` broken into lines about ``width_inches`` wide at ``size`` points (a character
    of DejaVu Sans is about 0.6 of its size wide)."""
    chars = max(20, int(width_inches * 72 / (0.6 * size)))
    return "\n".join(textwrap.wrap(text, chars, break_on_hyphens=False)) or text


def save_png(figure, path: Path) -> Path:
    """Write ``figure`` as a PNG, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", bbox_inches="tight", pad_inches=PAD,
                       metadata={"Software": None})
    return path


_SVG_IDS = re.compile(r'(\bid="|href="#|url\(#)')


def svg_markup(figure, prefix: str) -> str:
    """``figure`` as an ``<svg>`` element to put inline in HTML: no XML prologue, no date, and
    every id (and every reference to one) prefixed with ``prefix``, so that many figures in one
    page never share an id (matplotlib names glyphs and clip paths alike in every file)."""
    from matplotlib import rc_context

    buffer = io.StringIO()
    with rc_context({"svg.hashsalt": prefix}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", pad_inches=PAD,
                       metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    return _SVG_IDS.sub(lambda match: f"{match.group(1)}{prefix}-", text)


def packed(entries: list[str], width_inches: float, size: float = FONT) -> str:
    """``entries`` on lines about ``width_inches`` wide, never breaking one entry."""
    chars = max(20, int(width_inches * 72 / (0.6 * size)))
    lines: list[str] = []
    for entry in entries:
        if lines and len(lines[-1]) + 4 + len(entry) <= chars:
            lines[-1] += "    " + entry
        else:
            lines.append(entry)
    return "\n".join(lines)


def shown(names: Mapping[str, str] | None, model: str) -> str:
    return (names or {}).get(model, model)


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


def fit_band(top1: np.ndarray, scores: np.ndarray, grid: np.ndarray, n_resamples: int,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The least-squares line of logit(score) on logit(top-1), in percent at ``grid``, and its
    95% band over ``n_resamples`` resampled sets of models (the resamples of the correlation
    intervals); the band is NaN without resamples."""
    x, y, at = logit_percent(top1), logit_percent(scores), logit_percent(grid)
    slope, intercept = np.polyfit(x, y, 1)

    def percent(logits: np.ndarray) -> np.ndarray:
        return 100.0 / (1.0 + np.exp(-logits))

    fitted = percent(slope * at + intercept)
    if n_resamples < 1:
        return fitted, np.full_like(fitted, np.nan), np.full_like(fitted, np.nan)
    rows = model_resamples(len(x), n_resamples, seed)
    xs, ys = x[rows], y[rows]
    dx = xs - xs.mean(axis=1, keepdims=True)
    var = (dx * dx).sum(axis=1)
    keep = var > 0  # a resample of one repeated model has no line
    slopes = (dx * (ys - ys.mean(axis=1, keepdims=True))).sum(axis=1)[keep] / var[keep]
    intercepts = ys.mean(axis=1)[keep] - slopes * xs.mean(axis=1)[keep]
    lines = percent(slopes[:, None] * at[None, :] + intercepts[:, None])
    tail = 100.0 * (1.0 - LEVEL) / 2.0
    low, high = np.percentile(lines, [tail, 100.0 - tail], axis=0)
    return fitted, low, high


def correlation_figure(table: Table, top1: Mapping[str, float],
                       names: Mapping[str, str] | None = None, n_resamples: int = 0,
                       seed: int = 0):
    """ImageNet top-1 against each score column that has a model with a top-1: the points
    (numbered, a key below), their 95% intervals, and from three models the line fitted in
    logit space with its 95% band. None when no column has such a model: an empty plot says
    nothing."""
    columns = [c for c in table.percent_columns
               if any(m in top1 for m in column_scores(table, c))]
    if not columns:
        return None
    ncols = min(3, len(columns))
    nrows = -(-len(columns) // ncols)
    # A fixed grid in inches (constrained layout would redo this at every draw, slowly): each
    # panel 3.6 x 3.0 in with room for its tick labels, axis labels and a two-line title; the
    # figure's title above; the model names in a key below, inside the tight box.
    width, top = PANEL[0] * ncols, 0.5
    height = PANEL[1] * nrows + top
    figure = new_figure(width, height)
    figure.text(0.5, 1 - 0.15 / height, wrapped(f"{table.title}: transfer vs ImageNet top-1",
                                                width), ha="center", va="top",
                fontsize=FONT + 2)
    models_shown: list[str] = []
    for i, column in enumerate(columns):
        row, col = divmod(i, ncols)
        left, bottom = col * PANEL[0] + 0.75, (nrows - 1 - row) * PANEL[1] + 0.6
        axes = figure.add_axes((left / width, bottom / height, (PANEL[0] - 1.0) / width,
                                (PANEL[1] - 1.25) / height))
        scores = column_scores(table, column)
        models = [m for m in scores if m in top1]
        models_shown += [m for m in models if m not in models_shown]
        x = {m: top1[m] for m in models}
        axes.scatter(list(x.values()), [scores[m] for m in models], s=16, zorder=3)
        _error_bars(axes, table, column, x, scores)
        for m in models:
            axes.annotate(str(models_shown.index(m) + 1), (x[m], scores[m]), fontsize=FONT - 1,
                          xytext=(3, 3), textcoords="offset points")
        result = correlate(top1, scores)  # r and rho; their intervals are the table's
        if result.n_models >= 3 and np.ptp(list(x.values())) > 0:
            grid = np.linspace(min(x.values()), max(x.values()), 50)
            fitted, low, high = fit_band(np.array(list(x.values())),
                                         np.array([scores[m] for m in models]), grid,
                                         n_resamples, seed)
            axes.plot(grid, fitted, color="tab:red", linewidth=1)
            if np.isfinite(low).all():
                axes.fill_between(grid, low, high, color="tab:red", alpha=0.15, linewidth=0)
            title = f"{column}: r = {result.pearson_r:.2f}, ρ = {result.spearman_rho:.2f}"
        else:
            title = f"{column}: too few models for r"
        axes.set_title(wrapped(f"{title} (n = {result.n_models})", 3.2, FONT), fontsize=FONT)
        axes.set_xlabel("ImageNet top-1 (%)", fontsize=FONT)
        axes.set_ylabel(f"{column} (%)", fontsize=FONT)
        axes.tick_params(labelsize=FONT - 1)
    key = packed([f"{i + 1} {shown(names, m)}" for i, m in enumerate(models_shown)], width)
    figure.text(0.02, 0.0, key, ha="left", va="top", fontsize=FONT)
    return figure


def plot_correlations(table: Table, top1: Mapping[str, float], path: Path,
                      names: Mapping[str, str] | None = None, n_resamples: int = 0,
                      seed: int = 0) -> Path | None:
    """``correlation_figure`` as a PNG at ``path``; None (and no file) when it has nothing to
    show."""
    figure = correlation_figure(table, top1, names, n_resamples, seed)
    return None if figure is None else save_png(figure, path)


def heatmap_figure(table: Table, names: Mapping[str, str] | None = None):
    """Models x columns, each cell coloured and labelled with its score; None when the table
    has no number."""
    values = table.values
    data = np.ma.masked_invalid(values.to_numpy(dtype=float))
    if not data.count():
        return None
    width = 2.2 + 0.8 * len(values.columns)
    figure = new_figure(width, 1.2 + 0.34 * len(values.index))
    axes = figure.add_axes((0.1, 0.1, 0.72, 0.8))
    image = axes.imshow(data, cmap="viridis", aspect="auto")
    colorbar = figure.colorbar(image, ax=axes, fraction=0.08, pad=0.04)
    colorbar.ax.tick_params(labelsize=FONT - 1)
    axes.set_xticks(range(len(values.columns)), labels=list(values.columns), rotation=45,
                    ha="right", rotation_mode="anchor", fontsize=FONT)
    axes.set_yticks(range(len(values.index)), labels=[shown(names, m) for m in values.index],
                    fontsize=FONT)
    finite = data.compressed()
    middle = (finite.min() + finite.max()) / 2
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if data.mask is np.ma.nomask or not data.mask[i, j]:
                axes.text(j, i, f"{data[i, j]:.1f}", ha="center", va="center", fontsize=FONT - 1,
                          color="black" if data[i, j] > middle else "white")
    # clear of the colour bar's top tick label, which stands above the bar
    axes.set_title(wrapped(table.title, width), fontsize=FONT + 1, pad=FONT + 6)
    return figure


def plot_heatmap(table: Table, path: Path, names: Mapping[str, str] | None = None
                 ) -> Path | None:
    """``heatmap_figure`` as a PNG at ``path``; None (and no file) for a table of no number."""
    figure = heatmap_figure(table, names)
    return None if figure is None else save_png(figure, path)
