#!/usr/bin/env python
"""Many-shot linear evaluation: L-BFGS logistic regression on cached features, C searched on val.

    python linear.py --dataset cifar10 --model deepcluster-v2 --C 0.316   # paper: 94.07
    python linear.py --dataset digits --model random                      # offline check
"""

from __future__ import annotations

import sys

from transfer.console import setup_console
from transfer.errors import TransferError
from transfer.protocols import linear
from transfer.records.results import write_run


def main(argv: list[str] | None = None) -> int:
    args = linear.parse_args(argv)
    setup_console()
    try:
        result = linear.run(args)
        # the score first: a result that cannot be written is still seen
        for line in linear.summary_lines(result.record):
            print(line)
        path = write_run(linear.result_files(args, result.record["model"])[0], result)
    except TransferError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
