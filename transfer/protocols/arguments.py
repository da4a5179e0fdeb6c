"""Command-line options every protocol script shares, with one meaning everywhere."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from models import Backbone, load_backbone
from models.backbone import POOLS, PREPROCESSES, BackboneOptions
from transfer.features.many_shot import FeatureOptions
from transfer.runtime.device import device_argument
from transfer.runtime.precision import PRECISIONS


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum``, else argparse's usage error (exit 2)
    naming the option, before anything runs or is written."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}, got {text!r}"
            ) from error
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"int>={minimum}"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite float > 0."""
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from error
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser, dataset: str) -> None:
    """``-m/--model`` and ``-d/--dataset`` (default ``dataset``), as the original's scripts."""
    parser.add_argument("-m", "--model", default="deepcluster-v2",
                        help="model name, .pth file or timm:<architecture>[.<tag>]")
    parser.add_argument("-d", "--dataset", default=dataset, help="dataset name")


def add_location_arguments(parser: argparse.ArgumentParser, *, device: bool = False,
                           results: bool = False) -> None:
    """``--models-dir`` and ``--data-root`` (``None`` means the environment's or the default);
    with ``device``, ``--device``; with ``results``, ``--results-dir``."""
    if device:
        add_device_argument(parser)
    if results:
        add_results_dir_argument(parser)
    parser.add_argument(
        "--models-dir",
        default=None,
        help="folder of the common-format checkpoints "
        "(default: $SSL_TRANSFER_MODELS, else models/)",
    )
    parser.add_argument(
        "--data-root",
        default=None,
        help="folder holding one folder per dataset (default: $SSL_TRANSFER_DATA, else ../data)",
    )


def default_device() -> str:
    """CUDA when there is a GPU, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device``: cuda, cuda:N or cpu, checked when parsed (MPS refused with the reason)."""
    parser.add_argument("--device", type=device_argument, default=default_device(),
                        help="cpu, cuda or cuda:N (default: %(default)s)")


def add_backbone_arguments(parser: argparse.ArgumentParser) -> None:
    """How a ``timm:`` model is built and read; a ResNet-50 (registered, random, .pth) refuses
    them (docs/models.md)."""
    group = parser.add_argument_group("timm models (--model timm:<architecture>[.<tag>])")
    group.add_argument(
        "--weights",
        default=None,
        metavar="FILE",
        help="state dict of the model (.pth/.pt/.bin or .safetensors), loaded strictly "
        "(default: timm's pretrained weights)",
    )
    group.add_argument(
        "--random-init", action="store_true", help="seeded random initialisation (a lower bound)"
    )
    group.add_argument(
        "--pool",
        choices=POOLS,
        default="default",
        help="default: timm's pre-logits feature (CLS token or pooled map, as trained); avg: "
        "mean of the patch tokens (global average for CNNs); cls+avg: both concatenated",
    )
    group.add_argument(
        "--layers",
        type=positive_int,
        default=1,
        metavar="N",
        help="concatenate the feature of the last N blocks (default 1)",
    )
    group.add_argument(
        "--preprocess",
        choices=PREPROCESSES,
        default="paper",
        help="paper: the paper's resize + centre crop with the model's mean/std (default); model: "
        "timm's eval transform (crop_pct, interpolation)",
    )


def backbone_options(args: argparse.Namespace) -> BackboneOptions:
    """The ``add_backbone_arguments`` values of parsed ``args``."""
    return BackboneOptions(
        weights=args.weights,
        pool=args.pool,
        layers=args.layers,
        preprocess=args.preprocess,
        random_init=args.random_init,
    )


def backbone_of(args: argparse.Namespace) -> Backbone:
    """The backbone that ``--model`` and the backbone options of parsed ``args`` stand for."""
    return load_backbone(
        args.model, args.models_dir, no_norm=args.no_norm, options=backbone_options(args)
    )


def feature_options(args: argparse.Namespace) -> FeatureOptions:
    """How the feature pass of ``add_feature_arguments``' parsed ``args`` runs."""
    return FeatureOptions(
        args.image_size, args.batch_size, args.device, args.workers, args.precision
    )


def add_precision_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--precision``: one vocabulary (``transfer.precision``) for every script that runs a
    backbone; ``what`` names the pass it applies to."""
    choices = "; ".join(f"{p.name}: {p.help}" for p in PRECISIONS.values())
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32",
                        help=f"precision of {what} ({choices})")


def add_feature_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the protocols that run on cached features (linear.py, few_shot.py, knn.py)."""
    parser.add_argument(
        "-i",
        "--image-size",
        type=positive_int,
        default=None,
        help="input size (default: a timm model's native size, else the dataset's: 224 for "
        "the paper's)",
    )
    parser.add_argument(
        "-n",
        "--no-norm",
        action="store_true",
        help="no ImageNet normalisation (implied for simclr-v1/v2)",
    )
    add_backbone_arguments(parser)
    add_device_argument(parser)
    add_precision_argument(parser, "the feature pass")
    parser.add_argument(
        "-b", "--batch-size", type=positive_int, default=64, help="batch size of the feature pass"
    )
    parser.add_argument("--workers", type=non_negative_int, default=2, help="DataLoader workers")
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="feature cache (default: $SSL_TRANSFER_CACHE, else features/)",
    )
    add_results_dir_argument(parser)
    add_location_arguments(parser)


def add_results_dir_argument(parser: argparse.ArgumentParser) -> None:
    """``--results-dir``, where every script writes its records."""
    parser.add_argument(
        "--results-dir",
        default=None,
        help="where result JSON files go (default: $SSL_TRANSFER_RESULTS, else results/)",
    )


def add_bootstrap_argument(parser: argparse.ArgumentParser) -> None:
    """``--bootstrap N``: resamples of the test set for the score's 95% interval."""
    parser.add_argument(
        "--bootstrap",
        type=non_negative_int,
        default=2000,
        metavar="N",
        help="bootstrap resamples of the test images for the score's 95%% interval "
        "(0: no interval; default: %(default)s)",
    )
