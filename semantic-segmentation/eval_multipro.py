#!/usr/bin/env python
"""Evaluate a trained ADE20K model (multi-scale) and write ``results/segmentation/<model>.json``
with mIoU and pixel accuracy (docs/protocols.md, "Dense prediction").

    python eval_multipro.py --gpus 0,1 --cfg selfsupconfig/byol.yaml [--device cpu] [KEY VALUE ...]

The validation images are split between the processes (one per GPU of --gpus, or torchrun's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from inside this folder: make `transfer` importable
    sys.path.insert(0, str(REPO))

from transfer.console import setup_console  # noqa: E402
from transfer.errors import TransferError  # noqa: E402
from transfer.protocols.arguments import add_location_arguments  # noqa: E402
from transfer.protocols.dense.launch import launch  # noqa: E402
from transfer.protocols.dense.segmentation_task import (  # noqa: E402
    evaluate_segmentation,
    load_config,
    load_trained,
    segmentation_record,
)
from transfer.records.results import default_results_dir, write_result  # noqa: E402
from transfer.runtime.distributed import init_distributed, shutdown  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cfg", required=True, metavar="FILE", help="e.g. selfsupconfig/byol.yaml")
    p.add_argument("--gpus", default="0", help="CUDA ids, e.g. 0,1 or 0-3 (default: %(default)s)")
    add_location_arguments(p, device=True, results=True)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers per process")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE pairs")
    return p.parse_args(argv)


def run(args: argparse.Namespace, device: str) -> None:
    context, device = init_distributed(device)
    try:
        config = load_config(args.cfg, args.opts, args.data_root, args.models_dir)
        model, state = load_trained(config)
        meta = state["meta"]
        scores = evaluate_segmentation(model, config, meta["normalize"], device, context,
                                       args.workers)
        if context.is_main:
            record = segmentation_record(config, state, scores, vars(args), device)
            path = write_result(Path(args.results_dir or default_results_dir()) / "segmentation"
                                / f"{meta['model']}.json", record)
            print(f"Mean IoU: {scores['miou']:.4f}, Accuracy: {scores['pixel_accuracy']:.2f}%\n"
                  f"wrote {path}")
    finally:
        shutdown(context)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_console()
    try:
        load_config(args.cfg, args.opts, args.data_root, args.models_dir)  # fail before spawning
        launch(run, args, args.device, args.gpus)
    except TransferError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
