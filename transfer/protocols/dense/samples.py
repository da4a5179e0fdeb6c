"""Images and label maps of the dense tasks, as the MIT CSAIL toolkit feeds them.

Training: batches of ``batch_per_gpu`` images of one orientation (all portrait or all
landscape), one random short side per batch from ``scales`` (long side capped at ``max_size``),
each image resized on its own and zero-padded to the batch's size rounded up to
``padding_constant``; labels resized (nearest), padded with "ignore" and downsampled (nearest) by
``label_rate`` to the decoder's resolution. Unlike the toolkit (a fake dataset length of 1e10 and
per-worker shuffling), the batch plan is a function of (seed, pass) and batches are addressed by
(pass, index), so DataLoader workers, DistributedDataParallel ranks and resumed runs all see a
well-defined order.

Evaluation: one image at each test scale (sides rounded up to ``padding_constant``), the label at
full size.

Labels become int64 maps with -1 = ignore: ADE20K stores class c as c+1 and 0 as "unlabelled";
the NYUv2 normal-class PNGs store 255 for invalid depth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from transfer.errors import TransferError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: label encodings: raw value meaning "ignore", and the shift from raw value to class index
LABEL_ENCODINGS = {"ade20k": (0, -1), "nyuv2": (255, 0)}


class DenseDataError(TransferError):
    """Missing or inconsistent dense-task data (message names the file and what was expected)."""


@dataclass(frozen=True)
class Record:
    """One image, its label map, and (NYUv2 test) its ground-truth normals."""

    image: Path
    label: Path
    width: int
    height: int
    name: str
    normals: Path | None = None


@dataclass(frozen=True)
class Geometry:
    scales: tuple[int, ...]
    max_size: int
    padding_constant: int
    label_rate: int = 1


def round_up(x: int, p: int) -> int:
    return ((x - 1) // p + 1) * p


def resized_size(width: int, height: int, short: int, max_size: int) -> tuple[int, int]:
    """(width, height) with the short side at ``short`` and the long side at most ``max_size``."""
    scale = min(short / min(width, height), max_size / max(width, height))
    return int(width * scale), int(height * scale)


def decode_label(raw: np.ndarray, encoding: str) -> np.ndarray:
    ignore, shift = LABEL_ENCODINGS[encoding]
    label = raw.astype(np.int64) + shift
    label[raw == ignore] = -1
    return label


def image_tensor(image: Image.Image, normalize: bool) -> torch.Tensor:
    """RGB PIL image -> (3, H, W) float in [0, 1], ImageNet-normalised when ``normalize``."""
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    if normalize:
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        x = (x - mean) / std
    return x.contiguous()


def open_pair(record: Record) -> tuple[Image.Image, Image.Image]:
    for path in (record.image, record.label):
        if not path.is_file():
            raise DenseDataError(f"missing file {path} (listed for sample {record.name})")
    image = Image.open(record.image).convert("RGB")
    label = Image.open(record.label)
    if label.mode not in ("L", "P"):
        raise DenseDataError(f"{record.label}: expected an 8-bit label PNG, got mode {label.mode}")
    if image.size != label.size:
        raise DenseDataError(f"{record.image} is {image.size[0]}x{image.size[1]} but its label "
                             f"{record.label} is {label.size[0]}x{label.size[1]}")
    return image, label


@dataclass
class TrainBatches(Dataset):
    """Training batches addressed by ``(pass, index)`` keys (see ``keys``)."""

    records: list[Record]
    geometry: Geometry
    batch_per_gpu: int
    encoding: str
    normalize: bool = True
    random_flip: bool = False
    seed: int = 0
    _plans: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if len(self.records) < self.batch_per_gpu:
            raise DenseDataError(f"{len(self.records)} training images, fewer than one batch of "
                                 f"{self.batch_per_gpu}")
        if self.geometry.padding_constant % self.geometry.label_rate:
            raise DenseDataError(
                "padding_constant must be a multiple of the label downsampling rate")

    def plan(self, data_pass: int) -> list[list[int]]:
        """This pass's batches: a seeded shuffle, each image joining the open batch of its
        orientation; a batch is emitted when full (leftovers wait for no one and are dropped)."""
        if data_pass not in self._plans:
            order = np.random.default_rng([self.seed, data_pass]).permutation(len(self.records))
            bins: dict[bool, list[int]] = {True: [], False: []}
            batches = []
            for i in order:
                r = self.records[i]
                bin_ = bins[r.height > r.width]
                bin_.append(int(i))
                if len(bin_) == self.batch_per_gpu:
                    batches.append(list(bin_))
                    bin_.clear()
            self._plans = {data_pass: batches}
        return self._plans[data_pass]

    def keys(self, data_pass: int, rank: int = 0, world_size: int = 1) -> list[tuple[int, int]]:
        """This rank's keys of one pass, the same count on every rank."""
        n = len(self.plan(data_pass)) // world_size * world_size
        if n == 0:
            raise DenseDataError(f"{len(self.records)} training images make fewer batches than "
                                 f"the {world_size} processes")
        return [(data_pass, i) for i in range(rank, n, world_size)]

    def __len__(self) -> int:
        return len(self.plan(0))

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        data_pass, index = key
        members = [self.records[i] for i in self.plan(data_pass)[index]]
        rng = np.random.default_rng([self.seed, data_pass, index, 1])
        g = self.geometry
        short = int(rng.choice(g.scales))
        sizes = [resized_size(r.width, r.height, short, g.max_size) for r in members]
        width = round_up(max(w for w, _ in sizes), g.padding_constant)
        height = round_up(max(h for _, h in sizes), g.padding_constant)
        images = torch.zeros(len(members), 3, height, width)
        labels = torch.full((len(members), height // g.label_rate, width // g.label_rate), -1,
                            dtype=torch.int64)
        ignore = LABEL_ENCODINGS[self.encoding][0]
        for slot, (record, (w, h)) in enumerate(zip(members, sizes, strict=True)):
            image, label = open_pair(record)
            if self.random_flip and rng.random() < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                label = label.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            image = image.resize((w, h), Image.Resampling.BILINEAR)
            label = label.resize((w, h), Image.Resampling.NEAREST)
            # Pad with "ignore" to a multiple of the rate before downsampling (PIL's nearest
            # takes each block's centre pixel), as the toolkit does; the original NYUv2 code
            # padded with 0, which turned the padding into normal class 0.
            canvas = Image.new("L", (round_up(w, g.label_rate), round_up(h, g.label_rate)), ignore)
            canvas.paste(label.convert("L") if label.mode == "P" else label, (0, 0))
            small = canvas.resize((canvas.width // g.label_rate, canvas.height // g.label_rate),
                                  Image.Resampling.NEAREST)
            target = torch.from_numpy(decode_label(np.asarray(small), self.encoding))
            images[slot, :, :h, :w] = image_tensor(image, self.normalize)
            labels[slot, : target.shape[0], : target.shape[1]] = target
        return {"images": images, "labels": labels}


@dataclass
class EvalImages(Dataset):
    """One record per item: the image at every test scale, the full-size label, and the
    ground-truth normals where the record has them."""

    records: list[Record]
    geometry: Geometry
    encoding: str
    normalize: bool = True

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        image, label = open_pair(record)
        g = self.geometry
        images = []
        for short in g.scales:
            w, h = resized_size(image.width, image.height, short, g.max_size)
            size = (round_up(w, g.padding_constant), round_up(h, g.padding_constant))
            images.append(image_tensor(image.resize(size, Image.Resampling.BILINEAR),
                                       self.normalize).unsqueeze(0))
        item = {"images": images, "name": record.name,
                "label": torch.from_numpy(decode_label(np.asarray(label), self.encoding))}
        if record.normals is not None:
            item.update(load_normals(record.normals))
        return item


def load_normals(path: Path) -> dict[str, np.ndarray]:
    """``normals`` (H, W, 3) float32 and ``valid`` (H, W) bool from a prepared ``.npz``."""
    if not path.is_file():
        raise DenseDataError(f"missing ground-truth normals {path}; run prepare_nyuv2.py")
    with np.load(path) as data:
        return {"normals": data["normals"], "valid": data["valid"]}
