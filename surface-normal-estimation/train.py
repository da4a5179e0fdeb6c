#!/usr/bin/env python
"""Train the surface-normal decoder on NYUv2 over a frozen pretrained ResNet-50.

    python train.py --weights ../models/byol.pth --ckpt ckpt/byol [--device cpu] [--gpus 0,1]

The paper's schedule (docs/protocols.md, "Dense prediction"); the same --ckpt resumes. Several
GPUs: --gpus 0,1 (one process each) or torchrun --nproc-per-node 2 train.py ...
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
from transfer.protocols.dense.launch import launch  # noqa: E402
from transfer.protocols.dense.normals_task import add_recipe_arguments, recipe_of, train_normals  # noqa: E402
from transfer.protocols.dense.nyuv2 import FOLDER  # noqa: E402
from transfer.runtime.distributed import init_distributed, shutdown  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", required=True,
                   help="common-format checkpoint: a model name (models/<name>.pth) or a .pth path")
    p.add_argument("--ckpt", required=True, help="checkpoint folder (resumed if it holds one)")
    add_location_arguments(p, device=True)
    p.add_argument("--gpus", default="0", help="CUDA ids, e.g. 0,1 or 0-3 (default: %(default)s)")
    add_recipe_arguments(p)
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers per process")
    return p.parse_args(argv)


def run(args: argparse.Namespace, device: str) -> None:
    context, device = init_distributed(device)
    try:
        recipe = recipe_of(args)
        root = Path(args.data_root or default_data_root()) / FOLDER
        path = train_normals(args.weights, args.ckpt, root, recipe, device, context,
                             args.models_dir, args.workers)
        if context.is_main:
            print(f"checkpoint: {path}")
    finally:
        shutdown(context)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_console()
    try:
        launch(run, args, args.device, args.gpus)
    except TransferError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
