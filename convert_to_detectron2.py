#!/usr/bin/env python
"""Convert common-format models/<name>.pth into detectron2 checkpoints models/detectron2/<name>.pkl.

The detectron2 configs in detectron2-configs/ point MODEL.WEIGHTS at these pickles. Besides the
registered models, any common-format file converts: a name of models/<name>.pth, or a path to a
.pth file (its pickle is named after the file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from models.detectron2 import convert_checkpoint, detection_models, detection_refs
from models.registry import default_models_dir
from models.resnet50 import how_to_make_checkpoint
from models.resolve import model_label
from transfer.console import setup_console
from transfer.errors import TransferError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    names = list(detection_models())
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--models", nargs="+", default=names, metavar="NAME",
        help=f"models to convert: registered names, the name of any common-format"
        f" <models-dir>/<name>.pth, or a path to a .pth file"
        f" (default: all {len(names)}: {' '.join(names)})",
    )  # fmt: skip
    parser.add_argument(
        "--models-dir", type=Path,
        default=default_models_dir(),
        help="folder of <name>.pth; pickles go to its detectron2/ subfolder"
        " (default: $SSL_TRANSFER_MODELS, else <repo>/models)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_console()
    out_dir = args.models_dir / "detectron2"
    try:
        refs = detection_refs(args.models, args.models_dir)
    except TransferError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    converted, failed = [], []
    for ref in tqdm(refs, desc="converting", unit="model"):
        name, src = model_label(ref.text), ref.path
        if not src.is_file():
            how = how_to_make_checkpoint(ref.spec.name if ref.spec else ref.text, src)
            tqdm.write(f"skip {name}: {src} not found; {how}")
            continue
        try:
            dst = convert_checkpoint(src, out_dir / f"{src.stem}.pkl")
        except TransferError as err:
            tqdm.write(f"error {name}: {err}", file=sys.stderr)
            failed.append(name)
            continue
        tqdm.write(f"wrote {dst}")
        converted.append(name)
    print(f"converted {len(converted)} of {len(args.models)} model(s) into {out_dir}")
    if failed:
        print(f"error: could not convert {', '.join(failed)}", file=sys.stderr)
        return 1
    if not converted:
        print("error: no model converted", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
