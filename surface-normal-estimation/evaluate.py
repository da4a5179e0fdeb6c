#!/usr/bin/env python
"""Evaluate a trained surface-normal model on the 654 NYUv2 test images (docs/protocols.md, "Dense
prediction") and write ``results/normals/<model>.json``.

    python evaluate.py --ckpt ckpt/byol [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from inside this folder: make `transfer` importable
    sys.path.insert(0, str(REPO))

from datasets.registry import default_data_root  # noqa: E402
from transfer.console import setup_console  # noqa: E402
from transfer.errors import TransferError  # noqa: E402
from transfer.protocols.arguments import add_location_arguments  # noqa: E402
from transfer.protocols.dense.normals import ANGLE_THRESHOLDS  # noqa: E402
from transfer.protocols.dense.normals_task import (  # noqa: E402
    MAX_SIZE,
    TEST_SCALES,
    evaluate_normals,
    load_trained,
    normals_record,
)
from transfer.protocols.dense.nyuv2 import FOLDER  # noqa: E402
from transfer.records.results import default_results_dir, write_result  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", required=True, help="checkpoint folder written by train.py")
    add_location_arguments(p, device=True, results=True)
    p.add_argument("--scales", type=int, nargs="+", default=list(TEST_SCALES),
                   help="test short sides; several = multi-scale (default: %(default)s)")
    p.add_argument("--max-size", type=int, default=MAX_SIZE)
    p.add_argument("--workers", type=int, default=2)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_console()
    try:
        model, state = load_trained(args.ckpt)
        meta = state["meta"]
        root = Path(args.data_root or default_data_root()) / FOLDER
        metrics = evaluate_normals(model, root, meta["normalize"], args.device,
                                   tuple(args.scales), args.max_size, workers=args.workers)
    except TransferError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    total = state["schedule"]["epoch_iters"] * state["schedule"]["num_epoch"]
    if state["iteration"] < total:
        print(f"warning: {state['path']} stopped at iteration {state['iteration']} of {total}",
              file=sys.stderr)
    record = normals_record(state, metrics, root, tuple(args.scales), args.max_size, vars(args),
                            args.device)
    path = write_result(Path(args.results_dir or default_results_dir()) / "normals"
                        / f"{meta['model']}.json", record)
    print(f"mean {metrics['mean_angle_error']:.2f}  median {metrics['median_angle_error']:.2f}  "
          + "  ".join(f"<{t:g} {metrics[f'within_{t:g}']:.2f}" for t in ANGLE_THRESHOLDS))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
