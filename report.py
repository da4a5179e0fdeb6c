#!/usr/bin/env python
"""Turn results/ into the paper's tables, correlations with ImageNet top-1, and plots.

    python report.py                      # results/ -> report/ (report.md, tables/, plots/)
    python report.py --paper              # the paper's number and the difference beside ours
    python report.py --results runs/a --out report-a
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.registry import REPO_ROOT
from transfer.report import ReportError, write_report
from transfer.results import default_results_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=None,
                        help="results root (default: $SSL_TRANSFER_RESULTS, else results/)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "report",
                        help="output folder (default: report/)")
    parser.add_argument("--paper", action="store_true",
                        help="add tables of ours beside the paper's numbers (transfer/paper/)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = args.results or default_results_dir()
    try:
        report = write_report(results, args.out, paper=args.paper)
    except ReportError as error:
        print(f"report.py: error: {error}", file=sys.stderr)
        return 2
    for problem in report.problems:
        print(f"warning: left out {problem}", file=sys.stderr)
    names = ", ".join(t.name for t in [*report.tables, *report.comparisons, report.correlation])
    print(f"tables: {names}")
    print(f"wrote {len(report.files)} files; open {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
