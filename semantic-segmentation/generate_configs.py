#!/usr/bin/env python
"""Write semantic-segmentation/selfsupconfig/<model>.yaml for the 14 paper models from one template
(config-template.yaml): the toolkit's ade20k-resnet50-upernet recipe (docs/protocols.md, "Dense
prediction") with the encoder read from models/<model>.pth.

All configs come from here so that they cannot drift apart; edit the template and rerun
(`python semantic-segmentation/generate_configs.py`); `--check` only reports stale files.
Normalisation is not in the config: the model registry knows which models take raw [0, 1]
inputs (simclr-v1/v2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script from anywhere: make `models` importable
    sys.path.insert(0, str(REPO))

from models.registry import PAPER_MODELS  # noqa: E402
from transfer.protocols.generated_configs import sync_generated_files  # noqa: E402

#: The template; ``{model}`` is the model's name, ``{{...}}`` placeholders stay for the loader.
TEMPLATE = HERE / "config-template.yaml"


def render_config(model: str) -> str:
    return TEMPLATE.read_text().format(model=model)


def expected_configs() -> dict[Path, str]:
    return {
        HERE / "selfsupconfig" / f"{model}.yaml": render_config(model) for model in PAPER_MODELS
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="report stale files, write none")
    args = parser.parse_args(argv)
    code, lines = sync_generated_files(expected_configs(), (HERE / "selfsupconfig").glob("*.yaml"),
                                       REPO, args.check)
    for line in lines:
        print(line)
    return code


if __name__ == "__main__":
    sys.exit(main())
