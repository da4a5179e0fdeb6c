#!/usr/bin/env python
"""The table of the full-scale Fashion-MNIST measurement (benchmarks/fashion_mnist_full.py):
per run, the score with its interval from the result file, then each phase's wall time and peak
memory from the driver's summary.json, as Markdown.

    python benchmarks/fashion_mnist_table.py /work/fmnist-full
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def score_text(record: dict) -> str:
    """``88.44 [87.79, 89.07]`` (bootstrap interval) or ``78.80 ± 0.61`` (few-shot episodes)."""
    if "ci" in record:
        low, high = record["ci"]
        return f"{record['score']:.2f} [{low:.2f}, {high:.2f}]"
    return f"{record['accuracy']:.2f} ± {record['ci95']:.2f}"


def setting_text(record: dict) -> str:
    """The choice the protocol made or was given: C, k, or the shots."""
    if record["protocol"] == "linear":
        return f"C {record['C']:.3g}"
    if record["protocol"] == "knn":
        return f"k {record['k']}"
    return f"{record['n_way']}-way {record['n_support']}-shot, {record['episodes']} episodes"


def results_of(out: Path, run: str) -> list[dict]:
    """The result records a run wrote: its protocol's files, of its initialisation."""
    init, protocol = run.split("-", 1)
    records = []
    for path in sorted((out / "results" / protocol).glob("*__fashion-mnist*.json")):
        record = json.loads(path.read_text())
        if ("random-init" in record["model"]) == (init == "random"):
            records.append(record)
    return sorted(records, key=lambda r: r.get("n_support", 0))


def table(out: Path) -> str:
    """Two Markdown tables: the scores, then each run's phases with wall time and peak memory."""
    summary = json.loads((out / "summary.json").read_text())
    scores = ["| run | setting | score [95% interval] |", "|---|---|---:|"]
    phases = ["| run | phase | wall | peak RSS: main process / with workers |",
              "|---|---|---:|---:|"]
    for run, entry in summary.items():
        records = results_of(out, run)
        for record in records:
            scores.append(f"| {run} | {setting_text(record)} | {score_text(record)} |")
        if not records:
            scores.append(f"| {run} | exit {entry['exit']} | no result |")
        for phase in entry["phases"]:
            phases.append(
                f"| {run} | {phase['phase']} | {phase['seconds'] / 60:.1f} min | "
                f"{phase['peak_main_rss_mb'] / 1024:.2f} / {phase['peak_tree_rss_mb'] / 1024:.2f}"
                " GB |")
        peak = (entry.get("max_rss_kb_time") or 0) / 1024**2
        phases.append(f"| {run} | **whole run** | **{entry['wall_s'] / 60:.1f} min** | "
                      f"{peak:.2f} GB (largest process, time -v) |")
    return "\n".join(scores) + "\n\n" + "\n".join(phases)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the driver's --out folder")
    args = parser.parse_args(argv)
    if not (args.out / "summary.json").is_file():
        print(f"error: no summary.json in {args.out}: has fashion_mnist_full.py finished a run?",
              file=sys.stderr)
        return 2
    print(table(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
