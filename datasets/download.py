"""Fetch a dataset into its official layout with torchvision's downloader where one exists.

torchvision puts most archives in its own folder names (``dtd/dtd/``, ``flowers-102/``,
...); we download into a scratch folder inside the dataset folder and move the parts the
official layout names into place. Sets without a working public download have manual steps
instead (``manual_steps``), which ``python -m datasets download`` prints.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from datasets.errors import DatasetError
from datasets.registry import DatasetSpec, dataset_dir, get_dataset_spec

log = logging.getLogger(__name__)

SUN397_PARTITIONS_URL = "https://vision.princeton.edu/projects/2010/SUN/download/Partitions.zip"


def _move(source: Path, target: Path) -> None:
    if not source.exists():
        raise DatasetError(f"download finished but {source} is missing; layout changed?")
    if target.exists():
        log.info("keeping existing %s", target)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(target))


def _via_scratch(folder: Path, fetch, moves: dict[str, str]) -> None:
    """Run ``fetch(scratch)``, then move ``scratch/<from>`` to ``folder/<to>`` for each move."""
    scratch = folder / ".download"
    scratch.mkdir(parents=True, exist_ok=True)
    fetch(str(scratch))
    for source, target in moves.items():
        _move(scratch / source, folder / target)
    shutil.rmtree(scratch, ignore_errors=True)


def _fetch(spec: DatasetSpec, folder: Path) -> None:
    from torchvision import datasets as tv

    name = spec.name
    if name == "fashion-mnist":
        from datasets.idx_files import fetch_fashion_mnist

        fetch_fashion_mnist(folder)
    elif name in ("cifar10", "cifar100"):
        cls = tv.CIFAR10 if name == "cifar10" else tv.CIFAR100
        cls(str(folder), train=True, download=True)
    elif name == "dtd":
        moves = {"dtd/dtd/images": "images", "dtd/dtd/labels": "labels"}
        _via_scratch(folder, lambda root: tv.DTD(root, download=True), moves)
    elif name == "food":
        tv.Food101(str(folder), download=True)  # lands in Food/food-101 = the official layout
    elif name == "pets":
        moves = {"oxford-iiit-pet/images": "images", "oxford-iiit-pet/annotations": "annotations"}
        _via_scratch(folder, lambda root: tv.OxfordIIITPet(root, download=True), moves)
    elif name == "flowers":
        moves = {f"flowers-102/{n}": n for n in ("jpg", "setid.mat", "imagelabels.mat")}
        _via_scratch(folder, lambda root: tv.Flowers102(root, download=True), moves)
    elif name == "aircraft":
        moves = {"fgvc-aircraft-2013b/data": "data"}
        _via_scratch(folder, lambda root: tv.FGVCAircraft(root, download=True), moves)
    elif name == "eurosat":
        _via_scratch(folder, lambda root: tv.EuroSAT(root, download=True), {"eurosat/2750": "2750"})
    elif name == "caltech101":
        tv.Caltech101(str(folder), download=True)  # Caltech101/caltech101/101_ObjectCategories
    elif name == "voc2007":
        for image_set in ("trainval", "test"):  # both land in VOC2007/VOCdevkit/VOC2007
            tv.VOCDetection(str(folder), year="2007", image_set=image_set, download=True)
    elif name == "sun397":
        tv.SUN397(str(folder.parent), download=True)  # images + ClassName.txt in SUN397/
        from torchvision.datasets.utils import download_and_extract_archive

        def partitions(root: str) -> None:
            download_and_extract_archive(SUN397_PARTITIONS_URL, download_root=root)

        moves = {f"Partitions/{n}": n for n in ("Training_01.txt", "Testing_01.txt")}
        _via_scratch(folder, partitions, moves)
    else:
        raise KeyError(name)


AUTOMATIC = (
    "cifar10", "cifar100", "dtd", "food", "pets", "flowers", "aircraft", "eurosat",
    "caltech101", "voc2007", "sun397", "fashion-mnist",
)  # fmt: skip


def manual_steps(name: str, data_root: str | Path | None = None) -> str | None:
    """How to get ``name`` by hand, or None where ``download_dataset`` fetches it."""
    spec = get_dataset_spec(name)
    if spec.demo:
        return f"{name}: {spec.download_hint}"
    if name in AUTOMATIC:
        return None
    layout = spec.layout.replace("\n", "\n  ")
    return (f"{name}: no automatic download. Get the data from:\n  {spec.download_hint}\n"
            f"and arrange it as:\n  {layout}\nunder {dataset_dir(spec, data_root).parent}")


def download_dataset(name: str, data_root: str | Path | None = None) -> Path:
    """Download ``name`` into ``<data_root>/<folder>`` and return that folder; a set without an
    automatic download is a DatasetError holding its manual steps."""
    steps = manual_steps(name, data_root)
    if steps is not None:
        raise DatasetError(steps)
    spec = get_dataset_spec(name)
    folder = dataset_dir(spec, data_root)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        _fetch(spec, folder)
    except (OSError, RuntimeError) as error:
        raise DatasetError(
            f"{name}: download into {folder} failed: {error}\nget the data: {spec.download_hint}"
        ) from error
    return folder
