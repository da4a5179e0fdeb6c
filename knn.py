#!/usr/bin/env python
"""Many-shot weighted kNN evaluation (DINO's protocol) on cached features: k chosen on val.

    python knn.py --dataset cifar10 --model deepcluster-v2
    python knn.py --dataset pets --model supervised --n-per-class 1 2 5 10   # low-shot too
"""

from __future__ import annotations

import sys

from transfer.console import setup_console
from transfer.errors import TransferError
from transfer.protocols import knn
from transfer.records.results import write_run


def main(argv: list[str] | None = None) -> int:
    args = knn.parse_args(argv)
    setup_console()
    try:
        result = knn.run(args)
        # the scores first: a result that cannot be written is still seen
        for line in knn.summary_lines(result.record):
            print(line)
        path = write_run(knn.result_files(args, result.record["model"])[0], result)
    except TransferError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
