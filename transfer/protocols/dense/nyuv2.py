"""NYUv2 surface normals on disk (root = ``<data root>/NYUv2``).

Input, as distributed for the original code (FAIR's ``nyuv2_surfacenormal_metadata.zip`` plus
the 1449 labelled NYUv2 RGB images)::

    surfacenormal_metadata/all_normals.pklz   gzip pickle: all_normals (N, H, W, 3),
                                              all_valid_depth_masks (N, H, W), all_filenames
    surfacenormal_metadata/{train,test}_SN40.json
                                              [{"img": "000001_rgb.jpg", "segm": "000001_SN40.png",
                                                "width": W, "height": H}, ...]  (795 / 654)
    images/000001_rgb.jpg ...

Written by ``prepare_nyuv2.py`` (one file per image, so training and evaluation never load the
5 GB pickle)::

    labels/000001_SN40.png     40-class labels, 255 = invalid depth
    normals/000001.npz         normals (H, W, 3) float32, valid (H, W) bool
"""

from __future__ import annotations

import gzip
import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from transfer.atomic import atomic_path
from transfer.protocols.dense.normals import normals_to_labels
from transfer.protocols.dense.samples import DenseDataError, Record

FOLDER = "NYUv2"
METADATA = "surfacenormal_metadata"
GROUND_TRUTH = "all_normals.pklz"
SPLITS = ("train", "test")


def split_file(root: Path, split: str) -> Path:
    return root / METADATA / f"{split}_SN40.json"


def image_id(record: dict) -> str:
    """``000001_rgb.jpg`` -> ``000001`` (the key of ``all_filenames``)."""
    return str(record["img"]).split("_")[0]


def read_split(root: str | Path, split: str) -> list[Record]:
    """The records of ``split`` with paths to the image, the label PNG and the normals."""
    root = Path(root)
    path = split_file(root, split)
    if not path.is_file():
        raise DenseDataError(
            f"no NYUv2 split list at {path}; expected the surface-normal metadata (FAIR's "
            f"nyuv2_surfacenormal_metadata.zip) unpacked into {root / METADATA}")
    try:
        entries = json.loads(path.read_text())
        records = [
            Record(image=root / "images" / e["img"], label=root / "labels" / e["segm"],
                   width=int(e["width"]), height=int(e["height"]), name=image_id(e),
                   normals=root / "normals" / f"{image_id(e)}.npz")
            for e in entries
        ]
    except (ValueError, KeyError, TypeError) as error:
        raise DenseDataError(f"{path}: expected a JSON list of records with img, segm, width, "
                             f"height ({type(error).__name__}: {error})") from error
    if not records:
        raise DenseDataError(f"{path} lists no images")
    return records


def load_ground_truth(root: str | Path) -> dict:
    """The metadata pickle: a trusted file from the dataset's authors (it holds numpy arrays,
    which only pickle can read back)."""
    path = Path(root) / METADATA / GROUND_TRUTH
    if not path.is_file():
        raise DenseDataError(f"no ground-truth normals at {path}; unpack "
                             f"nyuv2_surfacenormal_metadata.zip into {path.parent}")
    with gzip.open(path, "rb") as handle:
        data = pickle.load(handle)  # noqa: S301 - the dataset's own file format
    missing = {"all_normals", "all_valid_depth_masks", "all_filenames"} - set(data)
    if missing:
        raise DenseDataError(f"{path} lacks {sorted(missing)}")
    return data


def prepare(root: str | Path, codebook: np.ndarray) -> Iterator[str]:
    """Write ``labels/<id>_SN40.png`` and ``normals/<id>.npz`` for every image of the two
    splits; files already present are kept (so a stopped run resumes). Yields each image id."""
    root = Path(root)
    wanted = {r.name: r for split in SPLITS for r in read_split(root, split)}
    data = load_ground_truth(root)
    index = {str(name): i for i, name in enumerate(data["all_filenames"])}
    absent = sorted(set(wanted) - set(index))
    if absent:
        raise DenseDataError(f"{len(absent)} images of the split lists have no ground truth in "
                             f"{GROUND_TRUTH} (e.g. {absent[:3]})")
    for name, record in wanted.items():
        if not (record.label.is_file() and record.normals.is_file()):
            normals = np.asarray(data["all_normals"][index[name]], dtype=np.float32)
            valid = np.asarray(data["all_valid_depth_masks"][index[name]]) > 0
            labels = normals_to_labels(normals, valid, codebook)
            record.label.parent.mkdir(parents=True, exist_ok=True)
            record.normals.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(record.label) as tmp:
                Image.fromarray(labels).save(tmp, format="PNG")
            with atomic_path(record.normals) as tmp, open(tmp, "wb") as handle:
                np.savez_compressed(handle, normals=normals, valid=valid)
        yield name
