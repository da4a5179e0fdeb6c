#!/usr/bin/env python
"""Before a long training job: build every config's model with detectron2, load the converted
weights, and name any backbone tensor left unloaded; bad input (no config for a model, a missing
or corrupt .pkl, no VOC where detectron2 reads it) is one line, ``error: ...``, exit status 2.

  python detectron2-configs/check_configs.py [--detectron2 ../detectron2] [--models NAME ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script from anywhere: make `models` importable
    sys.path.insert(0, str(REPO))

from models.detectron2 import detection_models, read_detectron2_checkpoint  # noqa: E402
from models.registry import default_models_dir  # noqa: E402
from transfer.console import setup_console  # noqa: E402
from transfer.errors import TransferError  # noqa: E402
from transfer.protocols.detection_configs import (  # noqa: E402
    FREEZE_AT,
    check_inputs,
    unloaded_after_loading,
    with_base,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--detectron2", type=Path, default=REPO.parent / "detectron2",
                        help="detectron2 checkout holding configs/Base-RCNN-FPN.yaml")
    parser.add_argument("--models", nargs="+", default=None, metavar="NAME",
                        help="models to check (default: all 14)")
    parser.add_argument("--models-dir", type=Path, default=default_models_dir())
    parser.add_argument("--datasets", type=Path, default=os.environ.get("DETECTRON2_DATASETS"),
                        help="also check the VOC devkits detectron2 will read (default: "
                        "$DETECTRON2_DATASETS when set)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_console()
    models = args.models or list(detection_models())
    base = args.detectron2 / "configs" / "Base-RCNN-FPN.yaml"
    try:
        weights, lines = check_inputs(models, args.models is not None, args.models_dir, base,
                                      args.datasets)
    except TransferError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for line in lines:  # the datasets' check; models not converted yet are skipped
        print(line)
    problems = checked = 0
    with tempfile.TemporaryDirectory(prefix="check_configs_") as tmp:
        for name, path in weights.items():
            converted = read_detectron2_checkpoint(path)  # one model's arrays in memory at a time
            for mode in FREEZE_AT:
                config = with_base(HERE / mode / f"{name}.yaml", base, Path(tmp))
                bad = unloaded_after_loading(config, path, converted)
                checked, problems = checked + 1, problems + bool(bad)
                print(f"FAIL {mode}/{name}: {len(bad)} backbone tensor(s) not loaded: "
                      f"{', '.join(bad[:10])}" if bad else f"ok   {mode}/{name}")
    print(f"{checked} config(s) checked, {problems} with unloaded backbone tensors")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
