#!/usr/bin/env python
"""Fetch every pretrained model and convert each source format to models/<name>.pth."""

from __future__ import annotations

import argparse
import sys

from models.prepare import prepare_model
from models.registry import MODELS, PAPER_MODELS, default_models_dir
from models.resolve import checkpoint_path
from transfer.console import setup_console
from transfer.errors import TransferError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(PAPER_MODELS),
        metavar="NAME",
        help=f"models to prepare (default: all 14): {', '.join(PAPER_MODELS)}",
    )
    parser.add_argument(
        "--models-dir",
        default=None,
        help="where models/<name>.pth go (default: $SSL_TRANSFER_MODELS, else models/)",
    )
    parser.add_argument("--from", dest="source", default=None, metavar="PATH",
                        help="convert this file instead of downloading (one model only), e.g. "
                        "the output of the SimCLR converters")
    parser.add_argument(
        "--force", action="store_true", help="convert again even if models/<name>.pth exists"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_console()
    models_dir = args.models_dir or default_models_dir()
    unknown = [name for name in args.models if name not in MODELS]
    if unknown:
        print(
            f"unknown model(s) {', '.join(unknown)}; registered: {', '.join(MODELS)}",
            file=sys.stderr,
        )
        return 2
    if args.source and len(args.models) != 1:
        print("--from converts one file: name exactly one model with --models", file=sys.stderr)
        return 2
    failed = []
    for name in args.models:
        if name == "random":
            print("random: initialised in memory from a fixed seed, nothing to prepare")
            continue
        target = checkpoint_path(name, models_dir)
        if target.exists() and not args.force and not args.source:
            print(f"{name}: found {target}")
            continue
        try:
            path, report = prepare_model(MODELS[name], models_dir, args.source)
        except TransferError as error:
            print(f"{name}: FAILED\n  {error}", file=sys.stderr)
            failed.append(name)
            continue
        print(f"{name}: wrote {path}\n  " + report.summary().replace("\n", "\n  "))
    if failed:
        print(f"{len(failed)} model(s) not prepared: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
