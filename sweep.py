#!/usr/bin/env python
"""Run the benchmark grid (models x datasets x protocols); cells with results are skipped.

    python sweep.py --models random --datasets digits --protocols linear few_shot
    python sweep.py --models paper --datasets all --protocols all --executor slurm --wait

``python sweep.py --help`` lists the shortcuts and options (transfer/sweep/options.py).
"""

from __future__ import annotations

import shlex
import sys

from transfer.errors import TransferError
from transfer.sweep import Outcome, make_executor, plan_grid, run_local, submit_cells
from transfer.sweep import options as cli
from transfer.sweep.plan import expand_datasets, expand_models, expand_protocols
from transfer.sweep.summary import summary_table


def main(argv: list[str] | None = None) -> int:
    args = cli.parse_args(argv)
    try:
        plan = plan_grid(expand_models(args.models, args.models_dir),
                         expand_datasets(args.datasets), expand_protocols(args.protocols),
                         cli.sweep_options(args), force=args.force)
    except TransferError as error:
        print(f"sweep.py: error: {error}", file=sys.stderr)
        return 2
    for protocol, dataset, reason in plan.not_applicable:
        print(f"left out {protocol} x {dataset}: {reason}")
    print(f"{len(plan.cells)} cells: {len(plan.to_run)} to run, {len(plan.done)} with results")
    for cell in plan.to_run:
        if cell.reason:
            print(f"rerun {cell.name}: {cell.reason}")
    if args.dry_run:
        for cell in plan.to_run:
            print(f"run   {cell.name}: {shlex.join(cell.argv)}")
        for cell in plan.done:
            print(f"skip  {cell.name}")
        return 0
    try:
        if args.executor == "local":
            ran = run_local(plan.to_run, args.jobs, cli.log_dir_of(args),
                            progress=not args.no_progress)
        else:
            executor = make_executor(cli.log_dir_of(args) / "submitit", cli.slurm_options(args))
            ran = submit_cells(plan.to_run, executor, wait=args.wait)
            for outcome in ran:
                if outcome.status == "submitted":
                    print(f"submitted {outcome.cell.name}: job {outcome.job_id}")
    except TransferError as error:
        print(f"sweep.py: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished cells are kept; rerun the same command to go on",
              file=sys.stderr)
        return 130
    outcomes = ran + [Outcome(cell, "skipped") for cell in plan.done]
    print(summary_table(outcomes))
    if any(o.status == "submitted" for o in outcomes):
        print("rerun this command once the jobs end: finished cells are skipped, failed ones "
              "resubmitted; then python report.py")
    return 1 if any(o.status in ("failed", "not run") for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
