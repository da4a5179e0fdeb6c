"""Command-line options every protocol script shares, with one meaning everywhere."""

from __future__ import annotations

import argparse

import torch


def add_location_arguments(parser: argparse.ArgumentParser) -> None:
    """``--models-dir`` and ``--data-root``; ``None`` means the environment's or the default."""
    parser.add_argument(
        "--models-dir", default=None,
        help="folder of the common-format checkpoints (default: $SSL_TRANSFER_MODELS, else models/)")
    parser.add_argument(
        "--data-root", default=None,
        help="folder holding one folder per dataset (default: $SSL_TRANSFER_DATA, else ../data)")


def default_device() -> str:
    """CUDA when there is a GPU, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"
