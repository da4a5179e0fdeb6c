#!/usr/bin/env python
"""Record a finished detectron2 run as results/detection/<model>__<frozen|finetune>.json.

Run after train_net.py, e.g. for the README's BYOL run:
  python detection_results.py --output-dir ../detectron2/tools/output/byol-frozen \
      --model byol --mode frozen

A run short of its SOLVER.MAX_ITER is refused (resume it); a run on fewer images than the
protocol's 144000 x 2 only with --short-schedule, as <model>__<mode>__iter<N>.json; an
--eval-only run as <model>__<mode>__evalonly.json (see docs/detection.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from transfer.console import setup_console
from transfer.errors import TransferError
from transfer.protocols.detection import MODES, write_detection_result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output-dir", type=Path, required=True,
                        help="the OUTPUT_DIR given to train_net.py")  # fmt: skip
    parser.add_argument("--model", required=True, metavar="NAME",
                        help="model the run started from (byol, ..., or your model's name)")
    parser.add_argument("--mode", required=True, choices=MODES,
                        help="which config the run used")  # fmt: skip
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="results root (default: $SSL_TRANSFER_RESULTS, else results/)")
    parser.add_argument("--weights", default=None,
                        help="the .pkl the run started from, for the record's checkpoint sha256 "
                             "(default: MODEL.WEIGHTS of OUTPUT_DIR/config.yaml)")  # fmt: skip
    parser.add_argument("--short-schedule", action="store_true",
                        help="record a finished run trained on fewer images than the protocol's"
                             " 144000 x 2 (a smoke test) under its own name, __iter<MAX_ITER>")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_console()
    try:
        path = write_detection_result(
            args.output_dir, args.results_dir, args.model, args.mode, args.weights,
            args.short_schedule,
        )  # fmt: skip
    except TransferError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
