"""``write_report``: gather, tabulate, correlate, plot, and write Markdown, CSV and PNG files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from transfer.atomic import atomic_path
from transfer.report.correlation import correlation_table, imagenet_top1
from transfer.report.gather import gather_results
from transfer.report.paper import compare_with_paper, load_paper_tables
from transfer.report.plots import plot_correlations, plot_heatmap
from transfer.report.significance import significance_for
from transfer.report.tables import Table, build_tables

DEFAULT_RESAMPLES = 2000  # as the protocols' --bootstrap


def _write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def table_markdown(table: Table) -> str:
    """Title, warnings, the table and its notes."""
    parts = [f"## {table.title}\n"]
    parts += [f"> **Warning:** {warning}\n" for warning in table.warnings]
    parts.append(table.markdown() + "\n")
    if table.notes:
        parts.append(table.notes_markdown() + "\n")
    return "\n".join(parts)


def write_table(table: Table, folder: Path) -> list[Path]:
    """``<name>.csv`` (full precision) and ``<name>.md`` in ``folder``."""
    csv = _write_text(folder / f"{table.name}.csv", table.csv_frame().to_csv())
    markdown = _write_text(folder / f"{table.name}.md", table_markdown(table))
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


def write_report(results_dir: str | Path, out_dir: str | Path, paper: bool = False,
                 extra_top1: Mapping[str, float] | None = None,
                 n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Report:
    """Gather the results, write tables (Markdown + CSV), the correlation table, the plots and
    ``report.md`` that shows them all; with ``paper``, the paper's numbers beside ours.
    ``extra_top1`` adds ImageNet top-1 values of other models (by result label) to the
    correlations; models without one are tabulated but left out of them. ``n_resamples``
    bootstrap resamples (0: none) give the paired comparisons of the many-shot tables and the
    intervals of the correlations."""
    out = Path(out_dir)
    results = gather_results(results_dir)
    tables = build_tables(results)
    pairs = {p.name.removesuffix("_pairs"): p
             for p in significance_for(tables, results.scores, n_resamples, seed)}
    top1 = imagenet_top1(extra_top1)
    correlation = correlation_table(tables, top1, n_resamples, seed)
    comparisons = []
    if paper:
        reference = load_paper_tables()
        comparisons = [c for t in tables if t.name in reference
                       if (c := compare_with_paper(t, reference[t.name])) is not None]
    files: list[Path] = []
    warnings = [w for table in tables for w in table.warnings]
    sections = [f"# Transfer results\n\n{results.files} result files from `{results_dir}`.\n"]
    if warnings:
        sections.append("## Warnings\n\n" + "\n".join(f"- {w}" for w in warnings) + "\n")
    for table in [*tables, *comparisons, correlation]:
        files += write_table(table, out / "tables")
        links = f"[CSV](tables/{table.name}.csv)"
        if (pair_table := pairs.get(table.name)) is not None:
            files += write_table(pair_table, out / "tables")
            links += (f", paired comparisons: [Markdown](tables/{pair_table.name}.md), "
                      f"[CSV](tables/{pair_table.name}.csv)")
        sections.append(f"{table_markdown(table)}\n{links}\n")
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
    return Report(tables, correlation, comparisons, files, results.problems, warnings,
                  list(pairs.values()))
