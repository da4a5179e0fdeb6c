"""Fashion-MNIST in its official layout: the four gzipped IDX files, read with numpy.

IDX (LeCun's MNIST format): a big-endian header ``0x00 0x00 <type> <ndim>``, then ``ndim``
big-endian uint32 sizes, then the data. Images are type 0x08 (uint8) with three sizes
(count, rows, cols), labels type 0x08 with one (count). We read the bytes ourselves (a dozen
lines) rather than through torchvision's MNIST classes, which want their own folder layout and
check nothing but the magic number; here every file is checked (magic, sizes against the byte
count, image and label counts, label range) and a bad one is one DatasetError naming it.

Where the files are missing, ``fetch_fashion_mnist`` links Debian's copy (package
``dataset-fashion-mnist``) or downloads the official files, checking their digests.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import zlib
from pathlib import Path

import numpy as np

from datasets.errors import DatasetError, missing_path_error
from datasets.registry import DatasetSpec
from datasets.sources import ArraySource
from datasets.split import Split, check_targets
from transfer.atomic import atomic_path

logger = logging.getLogger(__name__)

CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
# part -> (images file, labels file); the key prefix of a sample is the file's stem
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IMAGES_MAGIC = 0x00000803  # uint8, 3 dimensions
LABELS_MAGIC = 0x00000801  # uint8, 1 dimension

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
OFFICIAL_URLS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
# file -> (md5 published by Zalando in the Fashion-MNIST README, sha256 of that same file).
# Debian recompressed its copy (gzip time stamp 2020-06-05), so its .gz bytes differ from the
# official ones and cannot give these digests; the sha256 values are those of the official files
# as listed, identically, by several independent checksum lists (e.g. tensorflow-datasets').
OFFICIAL_DIGESTS = {
    "train-images-idx3-ubyte.gz": (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    ),
    "train-labels-idx1-ubyte.gz": (
        "25c81989df183df01b3e8a0aad5dffbe",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    ),
    "t10k-images-idx3-ubyte.gz": (
        "bef4ecab320f06d8554ea6380940ec79",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "bb300cfdad3c16e7a12a480ee83cd310",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    ),
}
NEITHER_WAY = (
    "install Debian's copy (apt-get install dataset-fashion-mnist), or run "
    "`python -m datasets download fashion-mnist` where the official site is reachable"
)


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array of one gzipped IDX file, after checking its magic number and sizes."""
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise DatasetError(f"missing IDX file {path}") from None
    except (OSError, EOFError, zlib.error) as error:  # not gzip, truncated, bad CRC
        raise DatasetError(f"cannot read {path}: corrupt or truncated gzip ({error})") from None
    ndim = magic & 0xFF
    header = 4 * (1 + ndim)
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        found = raw[:4].hex() if len(raw) >= 4 else f"{len(raw)} bytes"
        raise DatasetError(
            f"{path}: not an IDX file of {ndim}-d uint8 data (magic {found}, expected "
            f"{magic:08x}); are the images and labels files swapped?"
        )
    shape = tuple(int.from_bytes(raw[4 * (i + 1) : 4 * (i + 2)], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DatasetError(
            f"{path}: header says {' x '.join(map(str, shape))} = {expected} bytes of data, "
            f"the file holds {len(raw) - header}; truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_fashion_mnist(spec: DatasetSpec, root: Path, part: str, download: bool = True) -> Split:
    """The official "train" (60,000) or "test" (10,000) part; grey replicated to RGB."""
    if download and not all((root / name).is_file() for names in FILES.values() for name in names):
        fetch_fashion_mnist(root)
    images_name, labels_name = FILES[part]
    images_path, labels_path = root / images_name, root / labels_name
    for path in (images_path, labels_path):
        if not path.is_file():
            raise missing_path_error(path, spec, "file")
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC).astype(np.int64)
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels"
        )
    check_targets(labels, CLASSES, labels_path)
    stem = images_name.split("-")[0]
    rgb = np.repeat(images[..., None], 3, axis=-1)
    return Split(
        dataset=spec.name,
        name=part,
        classes=list(CLASSES),
        targets=labels,
        keys=[f"{stem}#{i}" for i in range(len(labels))],
        multilabel=False,
        source=ArraySource({stem: rgb}),
    )


def file_digests(path: Path) -> tuple[str, str]:
    """(md5, sha256) of a file, read once."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            md5.update(block)
            sha256.update(block)
    return md5.hexdigest(), sha256.hexdigest()


def fetch_fashion_mnist(folder: Path, debian_dir: Path | None = None) -> str:
    """Fill ``folder`` with the four files: links to Debian's copy (default ``DEBIAN_DIR``) where
    it is installed (offline, no space), else the official files downloaded and checked. Returns
    how they came: ``"debian"`` or ``"download"``."""
    debian_dir = debian_dir or DEBIAN_DIR
    names = [name for pair in FILES.values() for name in pair]
    if all((debian_dir / name).is_file() for name in names):
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            if not (folder / name).exists():
                with atomic_path(folder / name) as tmp:
                    tmp.unlink()
                    os.symlink(debian_dir / name, tmp)
        logger.info("fashion-mnist: linked Debian's copy in %s into %s", debian_dir, folder)
        return "debian"
    _download_official(folder, names)
    return "download"


def _download_official(folder: Path, names: list[str]) -> None:
    """Each missing file from the first official source that serves it, kept only when both its
    md5 and sha256 are the official files' ones."""
    from torchvision.datasets.utils import download_url

    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / ".download"
    try:
        for name in names:
            if (folder / name).is_file():
                continue
            md5, sha256 = OFFICIAL_DIGESTS[name]
            errors = []
            for base in OFFICIAL_URLS:
                try:
                    download_url(base + name, str(scratch), name)
                except (OSError, RuntimeError) as error:  # URLError is an OSError
                    errors.append(f"{base}: {error}")
                    continue
                got = file_digests(scratch / name)
                if got == (md5, sha256):
                    os.replace(scratch / name, folder / name)
                    break
                (scratch / name).unlink()
                errors.append(f"{base}{name}: md5 {got[0]}, sha256 {got[1]} are not the "
                              "official file's")
            else:
                raise DatasetError(
                    f"fashion-mnist: could not fetch {name} ({'; '.join(errors)}); "
                    f"{NEITHER_WAY}"
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
