#!/usr/bin/env python
"""With detectron2 installed: load every config, build its model, load the converted weights,
and report any backbone tensor the checkpoint left unloaded (or loaded with other values).

  python detectron2-configs/check_configs.py [--detectron2 ../detectron2] [--models NAME ...]
      [--datasets $DETECTRON2_DATASETS]

Run it before a long training job: bad input (a model without configs, a missing or corrupt
models/detectron2/<name>.pkl, a dataset root without the VOC devkits detectron2 reads) is one
line, ``error: ...``, exit status 2. With the default (all 14 models), models whose pickle is
missing are skipped with the command that makes it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run as a script from anywhere: make `models` importable
    sys.path.insert(0, str(REPO))

from models.detectron2 import detection_models, read_detectron2_checkpoint  # noqa: E402
from models.registry import default_models_dir  # noqa: E402
from transfer.errors import TransferError  # noqa: E402

MODES = ("frozen", "finetune")
#: The datasets of every config, as detectron2's builtin catalog maps them to devkit folders.
VOC_SPLITS = (("voc_2007_trainval", "VOC2007", "trainval"), ("voc_2012_trainval", "VOC2012",
              "trainval"), ("voc_2007_test", "VOC2007", "test"))  # fmt: skip
VOC_TARS = {"VOC2007": "VOCtrainval_06-Nov-2007.tar and VOCtest_06-Nov-2007.tar",
            "VOC2012": "VOCtrainval_11-May-2012.tar"}  # fmt: skip


class CheckError(TransferError, ValueError):
    """Input that makes the check meaningless: unknown model, unreadable weights, no VOC."""


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


def check_model_names(names: list[str]) -> None:
    """Every name must have generated configs (the 14 models with pretrained weights)."""
    known = list(detection_models())
    unknown = [name for name in names if name not in known]
    if unknown:
        raise CheckError(
            f"no detectron2 config for model {unknown[0]!r} (configs exist for: {' '.join(known)});"
            " for your own ResNet-50 train with the config of a model with the same input"
            " normalisation and MODEL.WEIGHTS pointing at its pickle (see docs/detection.md)"
        )


def check_voc_root(root: Path) -> int:
    """Check that ``root`` holds what detectron2 reads for our configs' datasets; returns the
    number of images listed. Names the first missing list, annotation or image file."""
    if not root.is_dir():
        raise CheckError(f"dataset root {root} is not a folder (set DETECTRON2_DATASETS)")
    images = 0
    for dataset, year, split in VOC_SPLITS:
        listing = root / year / "ImageSets" / "Main" / f"{split}.txt"
        if not listing.is_file():
            raise CheckError(
                f"dataset root {root} has no {listing.relative_to(root)}: detectron2 reads"
                f" {dataset} from $DETECTRON2_DATASETS/{year} (unpack {VOC_TARS[year]} so that"
                f" {year}/ holds Annotations, JPEGImages and ImageSets; see docs/detection.md)"
            )
        ids = listing.read_text().split()
        for image_id in ids:
            for path in (root / year / "Annotations" / f"{image_id}.xml",
                         root / year / "JPEGImages" / f"{image_id}.jpg"):  # fmt: skip
                if not path.is_file():
                    raise CheckError(f"{dataset}: {listing} lists {image_id}, but {path} is"
                                     " missing")  # fmt: skip
        images += len(ids)
    return images


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = list(detection_models())
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--detectron2", type=Path, default=REPO.parent / "detectron2",
                        help="detectron2 checkout holding configs/Base-RCNN-FPN.yaml")  # fmt: skip
    parser.add_argument("--models", nargs="+", default=None, metavar="NAME",
                        help=f"models to check (default: all {len(names)})")  # fmt: skip
    parser.add_argument("--models-dir", type=Path, default=default_models_dir())
    parser.add_argument(
        "--datasets", type=Path, default=os.environ.get("DETECTRON2_DATASETS") or None,
        help="also check the VOC devkits detectron2 will read (default: $DETECTRON2_DATASETS"
        " when set)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    named = args.models is not None
    models = args.models if named else list(detection_models())
    try:
        check_model_names(models)
        if args.datasets is not None:
            listed = check_voc_root(args.datasets)
            print(f"ok   datasets: {listed} images listed in {args.datasets}")
        base = args.detectron2 / "configs" / "Base-RCNN-FPN.yaml"
        if not base.is_file():
            raise CheckError(f"{base} not found; pass --detectron2 with your detectron2 checkout")
        weights = {}
        for name in models:
            path = args.models_dir / "detectron2" / f"{name}.pkl"
            if path.is_file() or named:  # a named model must be there; all 14: skip the absent
                read_detectron2_checkpoint(path)  # fails now, not after building 20 models
                weights[name] = path
            else:
                print(f"skip {name}: {path} not found (python convert_to_detectron2.py"
                      f" --models {name})")  # fmt: skip
        if not weights:
            raise CheckError(f"no converted checkpoint in {args.models_dir / 'detectron2'}: run"
                             " python convert_to_detectron2.py")  # fmt: skip
    except TransferError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.config import get_cfg
        from detectron2.modeling import build_model
    except ImportError as error:
        print(f"error: detectron2 is not importable ({error}); see docs/detection.md",
              file=sys.stderr)  # fmt: skip
        return 2

    problems = checked = 0
    tmp = Path(tempfile.mkdtemp(prefix="check_configs_"))
    try:
        for name, path in weights.items():
            converted = read_detectron2_checkpoint(path)  # one model's arrays in memory at a time
            for mode in MODES:
                cfg = get_cfg()
                cfg.merge_from_file(str(with_base(HERE / mode / f"{name}.yaml", base, tmp)))
                cfg.MODEL.DEVICE = "cpu"
                cfg.MODEL.WEIGHTS = str(path)  # the config's path is relative to detectron2/tools
                model = build_model(cfg)
                DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
                bad = unloaded_backbone_tensors(model, converted)
                checked += 1
                if bad:
                    problems += 1
                    print(f"FAIL {mode}/{name}: {len(bad)} backbone tensor(s) not loaded: "
                          f"{', '.join(bad[:10])}")  # fmt: skip
                else:
                    print(f"ok   {mode}/{name}")
    finally:
        shutil.rmtree(tmp)
    print(f"{checked} config(s) checked, {problems} with unloaded backbone tensors")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
