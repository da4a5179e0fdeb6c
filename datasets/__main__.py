"""``python -m datasets list | verify NAME [--deep] | download NAME``."""

from __future__ import annotations

import argparse
import json
import sys

from datasets.download import download_dataset, manual_steps
from datasets.registry import DATASETS, dataset_dir, default_data_root
from datasets.verify import verify_dataset
from transfer.console import setup_console
from transfer.errors import TransferError


def _list(data_root: str | None) -> int:
    root = data_root or str(default_data_root())
    print(f"data root: {root}")
    header = f"{'name':<15}{'folder':<14}{'classes':>8}  {'metric':<24}{'splits':<36}present"
    print(header)
    print("-" * len(header))
    for spec in DATASETS.values():
        present = "demo" if spec.demo else ("yes" if dataset_dir(spec, root).is_dir() else "no")
        splits = ",".join(spec.splits)
        print(
            f"{spec.name:<15}{spec.folder or '-':<14}{spec.num_classes:>8}  "
            f"{spec.metric:<24}{splits:<36}{present}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datasets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the known datasets and whether they are present")
    listing.add_argument("--data-root", default=None)
    verify = commands.add_parser("verify", help="check a dataset's layout, counts and images")
    verify.add_argument("name")
    verify.add_argument("--data-root", default=None)
    verify.add_argument("--deep", action="store_true", help="open every image")
    verify.add_argument(
        "--split-files-dir", default=None, help="caltech101 only: split files to use"
    )
    download = commands.add_parser("download", help="fetch a dataset into its official layout")
    download.add_argument("name")
    download.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    setup_console()

    try:
        if args.command == "list":
            return _list(args.data_root)
        if args.command == "download":
            steps = manual_steps(args.name, args.data_root)
            if steps is not None:
                print(steps)
                return 0
            folder = download_dataset(args.name, args.data_root)
            print(f"{args.name}: ready in {folder}")
            return 0
        summary = verify_dataset(args.name, args.data_root, args.deep, args.split_files_dir)
    except TransferError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
