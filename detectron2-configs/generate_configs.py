#!/usr/bin/env python
"""Write detectron2-configs/{frozen,finetune}/<model>.yaml from one template
(transfer/protocols/detection_configs.py), so the 28 configs cannot drift apart; `--check` only
reports stale files. For a layout other than detectron2/ beside ssl-transfer/, `--detectron2 DIR`
writes them with absolute paths into detectron2-configs/local/ (git-ignored; `--out` elsewhere).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script from anywhere: make `models` importable
    sys.path.insert(0, str(REPO))

from models.registry import default_models_dir  # noqa: E402
from transfer.protocols.detection_configs import FREEZE_AT, expected_configs  # noqa: E402
from transfer.protocols.generated_configs import sync_generated_files  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="report stale files, write none")
    parser.add_argument(
        "--detectron2", type=Path, metavar="DIR",
        help="your detectron2 checkout (holding configs/Base-RCNN-FPN.yaml): write configs with"
        " absolute paths for it into --out instead of the committed ones",
    )  # fmt: skip
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="with --detectron2: folder whose detectron2/<model>.pkl the configs"
                        " load (default: $SSL_TRANSFER_MODELS, else this checkout's models/)")
    parser.add_argument("--out", type=Path, default=None,
                        help="with --detectron2: where to write"
                        " (default: detectron2-configs/local)")
    args = parser.parse_args(argv)
    if args.detectron2 is None:
        if args.models_dir is not None or args.out is not None:
            parser.error("--models-dir and --out go with --detectron2")
        present = {p for mode in FREEZE_AT for p in (HERE / mode).glob("*.yaml")}
        expected = expected_configs(HERE)
        code, lines = sync_generated_files(expected, present, REPO, args.check)
        for line in lines:
            print(line)
        return code
    base = args.detectron2.expanduser().absolute() / "configs" / "Base-RCNN-FPN.yaml"
    if not base.is_file():
        print(f"error: {base} not found: --detectron2 names the detectron2 checkout (the folder"
              " holding configs/ and tools/)", file=sys.stderr)  # fmt: skip
        return 2
    models = (args.models_dir or default_models_dir()).expanduser().absolute()
    out = (args.out or HERE / "local").expanduser().absolute()
    expected = expected_configs(out, str(base), str(models / "detectron2" / "{model}.pkl"))
    present = {p for mode in FREEZE_AT for p in (out / mode).glob("*.yaml")}
    code, lines = sync_generated_files(expected, present, out, args.check)
    for line in lines:
        print(line)
    if code == 0 and not args.check:
        print(f"configs for {base.parent.parent} in {out}: train_net.py --config-file"
              f" {out / 'frozen' / '<model>.yaml'} works from any folder")
    return code


if __name__ == "__main__":
    sys.exit(main())
