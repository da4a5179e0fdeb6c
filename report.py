#!/usr/bin/env python
"""Turn results/ into the paper's tables, correlations with ImageNet top-1, and plots: one
self-contained page (report/index.html) and the same as Markdown, CSV and PNG files.

    python report.py             # results/ -> report/ (index.html, report.md, tables/, plots/)
    python report.py --paper              # the paper's number and the difference beside ours
    python report.py --results-dir runs/a --out report-a
    python report.py --imagenet-top1 timm:vit_small_patch14_dinov2.lvd142m=81.1
    python report.py --label timm:vit_small_patch16_224.dino="DINO ViT-S/16"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.registry import REPO_ROOT
from transfer.console import setup_console
from transfer.errors import TransferError
from transfer.protocols.arguments import non_negative_int
from transfer.records.results import default_results_dir
from transfer.report import DEFAULT_RESAMPLES, write_report
from transfer.report.names import parse_labels, parse_top1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", "--results", dest="results_dir", type=Path,
                        default=None,
                        help="results root (default: $SSL_TRANSFER_RESULTS, else results/)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "report",
                        help="output folder (default: report/)")
    parser.add_argument("--paper", action="store_true",
                        help="add tables of ours beside the paper's numbers "
                        "(transfer/report/paper_tables/)")
    parser.add_argument("--imagenet-top1", action="append", default=[], metavar="NAME=VALUE",
                        help="ImageNet top-1 (percent) of a model outside the paper's, for the "
                             "correlations (repeatable); NAME as given to --model")
    parser.add_argument("--label", action="append", default=[], metavar="NAME=TEXT",
                        help="show a model as TEXT (repeatable); NAME as given to --model, or "
                             "the name its results are filed under (default: the --model name)")
    parser.add_argument("--bootstrap", type=non_negative_int, default=DEFAULT_RESAMPLES,
                        metavar="N",
                        help="bootstrap resamples (seed 0) for the paired comparisons of models "
                             "and the correlation intervals (default: %(default)s; 0: none)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_console()
    results = args.results_dir or default_results_dir()
    try:
        report = write_report(results, args.out, paper=args.paper,
                              extra_top1=parse_top1(args.imagenet_top1),
                              n_resamples=args.bootstrap, labels=parse_labels(args.label))
    except TransferError as error:
        print(f"report.py: error: {error}", file=sys.stderr)
        return 2
    for problem in report.problems:
        print(f"warning: left out {problem}", file=sys.stderr)
    for warning in report.warnings:
        print(f"warning: {warning}")
    names = ", ".join(t.name for t in [*report.tables, *report.comparisons, report.correlation])
    print(f"tables: {names}")
    print(f"wrote {len(report.files)} files; open {report.page} (or {args.out / 'report.md'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
