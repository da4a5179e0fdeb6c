"""``write_report``: gather, tabulate, correlate, plot, and write Markdown, CSV, PNG and the HTML
page."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from transfer.atomic import atomic_path
from transfer.report.correlation import correlation_table, imagenet_top1
from transfer.report.gather import gather_results
from transfer.report.names import display_names, given_names
from transfer.report.page import render_page, table_section
from transfer.report.paper import compare_with_paper, load_paper_tables
from transfer.report.plots import plot_correlations, plot_heatmap
from transfer.report.significance import significance_for
from transfer.report.tables import Table, build_tables

log = logging.getLogger(__name__)

DEFAULT_RESAMPLES = 2000  # as the protocols' --bootstrap


def _write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def table_markdown(table: Table, names: Mapping[str, str] | None = None) -> str:
    """Title, warnings, the table (models by their shown ``names``) and its notes."""
    parts = [f"## {table.title}\n"]
    parts += [f"> **Warning:** {warning}\n" for warning in table.warnings]
    if len(table.values):
        parts.append(table.markdown(names) + "\n")
    if table.notes:
        parts.append(table.notes_markdown() + "\n")
    return "\n".join(parts)


def write_table(table: Table, folder: Path, names: Mapping[str, str] | None = None
                ) -> list[Path]:
    """``<name>.csv`` (full precision, models by the names they are filed under) and
    ``<name>.md`` in ``folder``."""
    csv = _write_text(folder / f"{table.name}.csv", table.csv_frame().to_csv())
    markdown = _write_text(folder / f"{table.name}.md", table_markdown(table, names))
    return [csv, markdown]


@dataclass
class Report:
    """What ``write_report`` produced."""

    tables: list[Table]
    correlation: Table
    comparisons: list[Table]
    files: list[Path]
    problems: list[str]
    warnings: list[str] = field(default_factory=list)
    pairs: list[Table] = field(default_factory=list)  # paired comparisons of many-shot tables
    names: dict[str, str] = field(default_factory=dict)  # result label -> name shown
    page: Path | None = None  # index.html


def _plot(made: Path | None, path: Path, files: list[Path]) -> Path | None:
    """Record a plot; where none was made, remove one an earlier report left at ``path``."""
    if made is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            log.info("removed %s: nothing to plot any more", path)
        return None
    files.append(made)
    return made


def write_report(results_dir: str | Path, out_dir: str | Path, paper: bool = False,
                 extra_top1: Mapping[str, float] | None = None,
                 n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                 labels: Mapping[str, str] | None = None) -> Report:
    """Gather the results, write tables (Markdown + CSV), the correlation table, the plots,
    ``report.md`` that shows them all and ``index.html``, the same as one page; with ``paper``,
    the paper's numbers beside ours. ``extra_top1`` adds ImageNet top-1 values of other models
    (by result label) to the correlations; models without one are tabulated but left out of
    them. ``n_resamples`` bootstrap resamples (0: none) give the paired comparisons of the
    many-shot tables and the intervals of the correlations. ``labels`` (``--label``) names
    models on the page, the Markdown tables and the plots; by default a model is shown by the
    ``--model`` name its records were made with."""
    out = Path(out_dir)
    results = gather_results(results_dir)
    names = display_names(given_names(results), labels)
    tables = build_tables(results)
    pairs = {p.name.removesuffix("_pairs"): p
             for p in significance_for(tables, results.scores, n_resamples, seed)}
    top1 = imagenet_top1(extra_top1)
    correlation = correlation_table(tables, top1, n_resamples, seed)
    comparisons = []
    reference = load_paper_tables() if paper else {}
    if paper:
        comparisons = [c for t in tables if t.name in reference
                       if (c := compare_with_paper(t, reference[t.name])) is not None]
    files: list[Path] = []
    warnings = [w for table in tables for w in table.warnings]
    sections = [f"# Transfer results\n\n{results.files} result files from `{results_dir}`; "
                "the same as one page: [index.html](index.html).\n"]
    if warnings:
        sections.append("## Warnings\n\n" + "\n".join(f"- {w}" for w in warnings) + "\n")
    for table in [*tables, *comparisons, correlation]:
        files += write_table(table, out / "tables", names)
        links = f"[CSV](tables/{table.name}.csv)"
        if (pair_table := pairs.get(table.name)) is not None:
            files += write_table(pair_table, out / "tables")
            links += (f", paired comparisons: [Markdown](tables/{pair_table.name}.md), "
                      f"[CSV](tables/{pair_table.name}.csv)")
        sections.append(f"{table_markdown(table, names)}\n{links}\n")
        if table.percent_columns:
            path = out / "plots" / f"{table.name}_vs_imagenet.png"
            made = plot_correlations(table, top1, path, names, n_resamples, seed)
            if _plot(made, path, files) is None:
                sections.append(f"No plot of {table.name} against ImageNet top-1: no model of "
                                "this table has one (give it with --imagenet-top1 NAME=VALUE).\n")
            else:
                sections.append(f"![{table.name} vs ImageNet top-1](plots/{path.name})\n")
        if table.heatmap:
            path = out / "plots" / f"{table.name}_heatmap.png"
            if _plot(plot_heatmap(table, path, names), path, files) is not None:
                sections.append(f"![{table.name} heatmap](plots/{path.name})\n")
    if names and any(shown != label for label, shown in names.items()):
        sections.append("## Names\n\n" + "\n".join(
            f"- {shown}: `{label}`" for label, shown in sorted(names.items()) if shown != label)
            + "\n")
    if results.problems:
        sections.append("## Files left out\n\n" + "\n".join(f"- {p}" for p in results.problems)
                        + "\n")
    files.append(_write_text(out / "report.md", "\n".join(sections)))
    page_sections = [table_section(t, names, pairs.get(t.name), reference.get(t.name), top1,
                                   n_resamples, seed) for t in tables]
    page_sections.append(table_section(correlation, names, figures=False))
    page = _write_text(out / "index.html", render_page(str(results_dir), results.files,
                                                       page_sections, names, results.problems))
    files.append(page)
    return Report(tables, correlation, comparisons, files, results.problems, warnings,
                  list(pairs.values()), names, page)
