#!/usr/bin/env python
"""Evaluate a pretrained model by finetuning it on a many-shot dataset.

    python finetune.py -m deepcluster-v2 -d cifar10            # the paper's 20-point grid
    python finetune.py -m supervised -d pets --lr 0.01 --wd 0  # skip the search
    python finetune.py -m byol -d pets --seeds 3               # final run with 3 seeds
    torchrun --nproc_per_node 8 finetune.py -m swav -d food --precision bf16

Finished grid points are kept, so rerunning an interrupted command resumes it.
"""

from __future__ import annotations

import sys

from transfer.console import setup_console
from transfer.errors import TransferError
from transfer.protocols import finetune
from transfer.records.results import check_results_dir
from transfer.runtime.distributed import init_distributed, on_main, shutdown


def main(argv: list[str] | None = None) -> int:
    args = finetune.parse_args(argv)
    setup_console()
    try:
        context, device = init_distributed(args.device)
    except TransferError as error:
        print(f"finetune.py: error: {error}", file=sys.stderr)
        return 2
    try:
        # before any training, by rank 0, the one that writes results (ranks on one machine
        # checking side by side would race); a failure stops every rank
        on_main(lambda: check_results_dir("finetune", args.results_dir), context)
        record = finetune.run_finetune(finetune.settings_of(args), context, device)
    except TransferError as error:
        print(f"finetune.py: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if context.is_main:
            print("\ninterrupted: finished grid points and the last checkpoint are kept; "
                  "rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        shutdown(context)
    if context.is_main:  # the records are written as the run goes (resumable grid points)
        for line in finetune.summary_lines(record):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
