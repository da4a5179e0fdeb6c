#!/usr/bin/env python
"""With detectron2 installed: load every config, build its model, load the converted weights,
and report any backbone tensor the checkpoint left unloaded (or loaded with other values).

  python detectron2-configs/check_configs.py [--detectron2 ../detectron2] [--models NAME ...]

Configs whose models/detectron2/<name>.pkl is missing are skipped (run convert_to_detectron2.py).
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script from anywhere: make `models` importable
    sys.path.insert(0, str(REPO))

from models.detectron2 import detection_models  # noqa: E402
from models.registry import default_models_dir  # noqa: E402


def unloaded_backbone_tensors(model, converted: dict) -> list[str]:
    """Backbone (bottom-up ResNet) keys whose tensor is not the converted checkpoint's."""
    import torch

    bad = []
    for key, value in model.backbone.bottom_up.state_dict().items():
        if key not in converted or not torch.equal(value.cpu(), torch.as_tensor(converted[key])):
            bad.append(key)
    return bad


def with_base(config: Path, base: Path, folder: Path) -> Path:
    """A copy of ``config`` in ``folder`` whose _BASE_ is ``base`` (absolute), so the check works
    whichever folder holds the detectron2 checkout."""
    lines = config.read_text().splitlines(keepends=True)
    copy = folder / f"{config.parent.name}-{config.name}"
    copy.write_text("".join(
        f'_BASE_: "{base.resolve()}"\n' if line.startswith("_BASE_:") else line for line in lines
    ))  # fmt: skip
    return copy


def main(argv: list[str] | None = None) -> int:
    names = list(detection_models())
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--detectron2", type=Path, default=REPO.parent / "detectron2",
                        help="detectron2 checkout holding configs/Base-RCNN-FPN.yaml")  # fmt: skip
    parser.add_argument("--models", nargs="+", default=names, choices=names, metavar="NAME")
    parser.add_argument("--models-dir", type=Path, default=default_models_dir())
    args = parser.parse_args(argv)
    try:
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.config import get_cfg
        from detectron2.modeling import build_model
    except ImportError as err:
        print(f"error: detectron2 is not importable ({err}); see detectron2-configs/README.md")
        return 1
    base = args.detectron2 / "configs" / "Base-RCNN-FPN.yaml"
    if not base.is_file():
        print(f"error: {base} not found; pass --detectron2 with your detectron2 checkout")
        return 1

    problems = checked = 0
    tmp = Path(tempfile.mkdtemp(prefix="check_configs_"))
    for mode in ("frozen", "finetune"):
        for name in args.models:
            weights = args.models_dir / "detectron2" / f"{name}.pkl"
            if not weights.is_file():
                print(f"skip {mode}/{name}: {weights} not found (run convert_to_detectron2.py)")
                continue
            cfg = get_cfg()
            cfg.merge_from_file(str(with_base(HERE / mode / f"{name}.yaml", base, tmp)))
            cfg.MODEL.DEVICE = "cpu"
            cfg.MODEL.WEIGHTS = str(weights)  # the config's path is relative to detectron2/tools
            model = build_model(cfg)
            DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
            with open(weights, "rb") as f:
                bad = unloaded_backbone_tensors(model, pickle.load(f)["model"])
            checked += 1
            if bad:
                problems += 1
                print(f"FAIL {mode}/{name}: {len(bad)} backbone tensor(s) not loaded: "
                      f"{', '.join(bad[:10])}")  # fmt: skip
            else:
                print(f"ok   {mode}/{name}")
    shutil.rmtree(tmp)
    print(f"{checked} config(s) checked, {problems} with unloaded backbone tensors")
    return 1 if problems or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
