"""``index.html``: the whole report as one self-contained page (styles inline, figures as inline
SVG, no script, nothing fetched), rendered with Jinja2 from the report's tables.

Jinja2 escapes every model name, path and option the records carry; the page's only markup that
is not escaped is matplotlib's own SVG. Each cell's provenance opens on demand in a
``<details>`` element, so the page needs no JavaScript.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from transfer.report.forest import forest_figure, forest_order, pairs_figure
from transfer.report.paper import paper_cells
from transfer.report.plots import correlation_figure, svg_markup
from transfer.report.tables import Table

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
SCORE_TABLES = re.compile(r"^(linear|finetune|knn|few_shot_\d+way\d+shot)$")


@dataclass
class Figure:
    """One inline SVG figure and its caption."""

    svg: Any  # markupsafe.Markup: matplotlib's SVG, the only unescaped markup of the page
    caption: str
    kind: str


@dataclass
class Cell:
    """One table cell as the page shows it; ``score``/``low``/``high`` are the numbers behind
    the text (``data-`` attributes, for tests and scripts that read the page)."""

    column: str
    value: str
    interval: str = ""
    tied: bool = False
    score: float | None = None
    low: float | None = None
    high: float | None = None
    provenance: list[tuple[str, str]] = field(default_factory=list)
    paper: dict[str, str] | None = None


@dataclass
class Row:
    label: str  # the name the results are filed under
    name: str  # the name shown
    cells: list[Cell]
    rank: str | None = None


@dataclass
class Section:
    """One table of the report with its warnings, notes and figures."""

    anchor: str
    title: str
    name: str
    index_name: str
    columns: list[str]
    rows: list[Row]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    figure_notes: list[str] = field(default_factory=list)
    rank_title: str | None = None
    csv: str = ""


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, str) or pd.isna(value):
        return None
    return float(value)


def _compact(value: Any) -> str:
    """A provenance value on one line: mappings as ``key=value, ...``, split identities cut to
    12 characters (enough to tell two apart; the record has the whole hash)."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_compact(v)}" for k, v in value.items()) or "-"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def provenance_items(record: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """What made a cell's record, as (what, value) lines: file stem, names, checkpoint, split
    identities, code version, device, transform, options, date."""
    if record is None:
        return [("record", "none (a value computed from other cells)")]
    items = [("result file", Path(str(record["file"])).stem), ("filed as", str(record["model"]))]
    given = record.get("given")
    if isinstance(given, str) and given != record["model"]:
        items.append(("--model", given))
    block = record.get("provenance")
    if not isinstance(block, Mapping):
        items.append(("provenance", "none in this record (written before records kept it)"))
        return items
    splits = block.get("splits") or {}
    items += [("checkpoint", _compact(block.get("checkpoint"))),
              ("splits", ", ".join(f"{name} {str(identity)[:12]}"
                                   for name, identity in splits.items()) or "-"),
              ("code", str(record.get("version") or "-")),
              ("device", _compact(block.get("device"))),
              ("transform", _compact(block.get("transform") or {})),
              ("options", _compact(block.get("options") or {}))]
    if record.get("created"):
        items.append(("created", str(record["created"])))
    return items


def _record_part(table: str, column: str) -> str:
    """The ``dataset`` of the record behind a column of the detection and dense tables."""
    if table == "detection":
        return f"voc2007 {column.split('_')[0]}"
    if table == "dense":
        return "normals" if column.startswith("normals") else "segmentation"
    return column


def _records_by_cell(table: Table) -> dict[tuple[str, str], dict[str, Any]]:
    if table.records is None:
        return {}
    return {(row["model"], row["dataset"]): row for row in table.records.to_dict("records")}


def _cell(table: Table, label: str, column: str, records: Mapping[tuple[str, str], Any],
          paper: Mapping[tuple[str, str], Mapping[str, Any]]) -> Cell:
    value, interval = table.parts(label, column)
    bounds = table.interval(label, column)
    cell = Cell(column, value, interval, table.is_tied(label, column),
                _number(table.values.at[label, column]),
                None if bounds is None else bounds[0], None if bounds is None else bounds[1])
    if cell.score is not None and table.records is not None:
        if column in table.averaged:
            cell.provenance = [("mean over", ", ".join(table.averaged[column]))]
        else:
            cell.provenance = provenance_items(
                records.get((label, _record_part(table.name, column))))
    if (theirs := paper.get((label, column))) is not None:
        digits = table.decimals.get(column, 2)
        inside = theirs["paper_in_our_interval"]
        cell.paper = {"value": f"{theirs['paper']:.{digits}f}",
                      "difference": f"{theirs['difference']:+.{digits}f}".replace("-", "−"),
                      "inside": {"yes": "in", "no": "out"}.get(inside, "na")}
    return cell


def _anchor(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


def _unit(table: Table, column: str) -> str:
    if table.records is not None and "metric" in table.records.columns:
        metrics = table.records.loc[table.records["dataset"] == column, "metric"].dropna()
        if len(metrics):
            return f"{metrics.iloc[0]} (%)"
    return "score (%)"


def _figures(table: Table, pairs: Table | None, top1: Mapping[str, float],
             names: Mapping[str, str], n_resamples: int, seed: int
             ) -> tuple[list[Figure], list[str]]:
    """The forest plot of every dataset column of a score table and, where its models were
    paired, their p-value matrix; the correlation with ImageNet top-1 where any model has one.
    Returns the figures and one-line notes on those left out."""
    figures, notes = [], []
    if SCORE_TABLES.match(table.name):
        for column in table.values.columns:
            if column in table.averaged:
                continue
            prefix = _anchor(f"{table.name}-{column}")
            forest = forest_figure(table, column, names, _unit(table, column))
            if forest is not None:
                figures.append(Figure(svg_markup(forest, f"{prefix}-forest"),
                                      f"{column}: scores with 95% intervals, best first; "
                                      "filled: best or not significantly worse", "forest"))
            if pairs is not None:
                matrix = pairs_figure(pairs, column, forest_order(table, column), names)
                if matrix is not None:
                    figures.append(Figure(svg_markup(matrix, f"{prefix}-pairs"),
                                          f"{column}: Holm-corrected p of each pair of models",
                                          "pairs"))
    if table.percent_columns:
        figure = correlation_figure(table, top1, names, n_resamples, seed)
        if figure is None:
            notes.append("no plot against ImageNet top-1: no model of this table has one "
                         "(give it with --imagenet-top1 NAME=VALUE)")
        else:
            figures.append(Figure(svg_markup(figure, _anchor(f"{table.name}-imagenet")),
                                  "scores against ImageNet top-1, the line fitted on logits "
                                  "with its 95% band over resampled models", "correlation"))
    return figures, notes


def table_section(table: Table, names: Mapping[str, str], pairs: Table | None = None,
                  paper: pd.DataFrame | None = None, top1: Mapping[str, float] | None = None,
                  n_resamples: int = 0, seed: int = 0, figures: bool = True) -> Section:
    """A table as the page shows it: cells with intervals, marks, provenance and the paper's
    numbers, its warnings and notes, and (``figures``) its plots."""
    cells_of_paper: dict[tuple[str, str], Mapping[str, Any]] = {}
    notes = list(table.notes)
    if paper is not None:
        found, why = paper_cells(table, paper)
        cells_of_paper = {(row["model"], row["column"]): row for row in found}
        notes += why
        checked = [row for row in found if row["paper_in_our_interval"] != "-"]
        if checked:
            inside = sum(row["paper_in_our_interval"] == "yes" for row in checked)
            notes.append(f"paper: the published number, our difference from it; green where it "
                         f"lies in our 95% interval ({inside} of {len(checked)} cells), red "
                         "where it does not, grey where we have no interval")
    records = _records_by_cell(table)
    rows = [Row(str(label), names.get(str(label), str(label)),
                [_cell(table, label, str(c), records, cells_of_paper)
                 for c in table.values.columns],
                table.rank_cell(label) if table.rank is not None else None)
            for label in table.values.index]
    section = Section(_anchor(table.name), table.title, table.name,
                      str(table.values.index.name or ""), [str(c) for c in table.values.columns],
                      rows, list(table.warnings), notes,
                      rank_title=table.rank_title if table.rank is not None else None,
                      csv=f"tables/{table.name}.csv")
    if figures:
        section.figures, section.figure_notes = _figures(table, pairs, top1 or {}, names,
                                                         n_resamples, seed)
    return section


def render_page(source: str, files: int, sections: Sequence[Section],
                names: Mapping[str, str], problems: Sequence[str]) -> str:
    """The page's HTML."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    environment = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                              autoescape=select_autoescape(default=True), trim_blocks=True,
                              lstrip_blocks=True)
    renamed = sorted((shown, label) for label, shown in names.items() if shown != label)
    warnings = [w for section in sections for w in section.warnings]
    return environment.get_template("index.html.j2").render(
        source=source, files=files, sections=sections, renamed=renamed, problems=problems,
        warnings=warnings)
