#!/usr/bin/env python
"""Few-shot evaluation (ProtoNet, no training): N-way K-shot episodes on cached features.

    python few_shot.py --dataset eurosat --model deepcluster-v2 --n-way 5 --n-support 5  # 88.39
    python few_shot.py --dataset chestx --model supervised --n-support 5 20 50
"""

from __future__ import annotations

import sys

from transfer.console import setup_console
from transfer.errors import TransferError
from transfer.protocols import few_shot
from transfer.records.results import write_run


def main(argv: list[str] | None = None) -> int:
    args = few_shot.parse_args(argv)
    setup_console()
    try:
        results = few_shot.run(args)
        paths = few_shot.result_files(args, results[0].record["model"])
        for result, path in zip(results, paths, strict=True):
            for line in few_shot.summary_lines(result.record):
                print(line)
            write_run(path, result)
    except TransferError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
