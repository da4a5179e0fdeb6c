"""ADE20K (SceneParsing, 150 classes) in the MIT CSAIL toolkit's layout: ``.odgt`` lists, one
JSON record a line, with paths relative to the dataset root::

    {"fpath_img": "ADEChallengeData2016/images/validation/ADE_val_00000001.jpg",
     "fpath_segm": "ADEChallengeData2016/annotations/validation/ADE_val_00000001.png",
     "width": 683, "height": 512}

Label PNGs hold class c as c + 1 and 0 for "unlabelled" (ignored).
"""

from __future__ import annotations

import json
from pathlib import Path

from transfer.protocols.dense.samples import DenseDataError, Record

NUM_CLASSES = 150


def read_odgt(path: str | Path, root: str | Path) -> list[Record]:
    path, root = Path(path), Path(root)
    if not path.is_file():
        raise DenseDataError(f"no ADE20K list at {path}; expected the toolkit's .odgt files "
                             "(training.odgt / validation.odgt) beside ADEChallengeData2016/")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            records.append(Record(image=root / entry["fpath_img"], label=root / entry["fpath_segm"],
                                  width=int(entry["width"]), height=int(entry["height"]),
                                  name=str(entry["fpath_img"])))
        except (ValueError, KeyError, TypeError) as error:
            raise DenseDataError(f"{path} line {number}: expected a JSON record with fpath_img, "
                                 f"fpath_segm, width, height ({error})") from error
    if not records:
        raise DenseDataError(f"{path} lists no images")
    return records
