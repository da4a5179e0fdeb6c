#!/usr/bin/env python
"""Write the NYUv2 surface-normal training labels (40 codebook classes, 255 = invalid depth) and
per-image ground-truth normals from the surface-normal metadata (see README.md for the layout).

    python prepare_nyuv2.py [--data-root ../../data]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from inside this folder: make `transfer` importable
    sys.path.insert(0, str(REPO))

from datasets.registry import default_data_root  # noqa: E402
from transfer.errors import TransferError  # noqa: E402
from transfer.protocols.dense.normals import CODEBOOK_PATH, load_codebook  # noqa: E402
from transfer.protocols.dense.nyuv2 import FOLDER, SPLITS, prepare, read_split  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=None,
                   help="folder holding NYUv2/ (default: $SSL_TRANSFER_DATA, else ../data)")
    p.add_argument("--codebook", default=str(CODEBOOK_PATH), help="CSV of the 40 unit normals")
    args = p.parse_args(argv)
    root = Path(args.data_root or default_data_root()) / FOLDER
    try:
        codebook = load_codebook(args.codebook)
        total = sum(len(read_split(root, split)) for split in SPLITS)
        for _ in tqdm(prepare(root, codebook), total=total, desc="labels", dynamic_ncols=True):
            pass
    except TransferError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {root / 'labels'} and {root / 'normals'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
