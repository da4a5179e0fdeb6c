#!/usr/bin/env python
"""Run the benchmark grid (models x datasets x protocols); cells with results are skipped.

    python sweep.py --models random --datasets digits --protocols linear few_shot
    python sweep.py --models paper --datasets all --protocols all --executor slurm --wait

On a cluster: docs/cluster.md.

``python sweep.py --help`` lists the shortcuts and options (transfer/sweep/options.py).
"""

from __future__ import annotations

import shlex
import sys

from transfer.console import setup_console
from transfer.errors import TransferError
from transfer.sweep import Outcome, plan_grid, run_local, run_on_slurm
from transfer.sweep import options as cli
from transfer.sweep.local import terminate_as_interrupt
from transfer.sweep.plan import expand_datasets, expand_models, expand_protocols
from transfer.sweep.summary import summary_table


def main(argv: list[str] | None = None) -> int:
    args = cli.parse_args(argv)
    setup_console()
    try:
        if args.executor == "slurm":  # impossible job sizes fail before any planning
            cli.slurm_options(args).check()
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
            with terminate_as_interrupt():  # SIGTERM / SIGHUP: the message below, then exit
                ran = run_on_slurm(plan.to_run, cli.slurm_options(args), cli.log_dir_of(args),
                                   wait=args.wait, say=lambda line: print(line, flush=True))
    except TransferError as error:
        print(f"sweep.py: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.executor == "slurm":
            print("\ninterrupted: the submitted jobs go on; rerun the same command with --wait "
                  "to collect them (none is submitted twice)", file=sys.stderr)
        else:
            print("\ninterrupted: finished cells are kept; rerun the same command to go on",
                  file=sys.stderr)
        return 130
    outcomes = ran + [Outcome(cell, "skipped") for cell in plan.done]
    print(summary_table(outcomes))
    if any(o.status in ("pending", "running") for o in outcomes):
        print("the jobs go on without this command: rerun it with --wait to wait for them "
              "(finished cells are skipped, queued ones collected, failed ones resubmitted); "
              "then python report.py")
    return 1 if any(o.status in ("failed", "not run") for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
