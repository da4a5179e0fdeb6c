"""Reading weights files safely: ``torch.load(weights_only=True)`` or safetensors, wrappers and
prefixes unwrapped, keys and shapes compared with what a model expects, and file digests."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import torch

from models.errors import ModelError


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def state_dict_mismatch(state_dict: dict, shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """One line per kind of difference between ``state_dict`` and the expected key -> shape:
    missing, unexpected and wrong-shape keys (at most 20 named each); empty when they match."""
    missing = sorted(set(shapes) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(shapes))
    wrong_shape = sorted(
        f"{key}: {tuple(state_dict[key].shape)} (expected {shapes[key]})"
        for key in set(shapes) & set(state_dict)
        if tuple(state_dict[key].shape) != tuple(shapes[key])
    )
    lines = []
    for title, keys in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("wrong shape", wrong_shape),
    ):
        if keys:
            shown = ", ".join(keys[:20]) + (f", ... ({len(keys)} in all)" if len(keys) > 20 else "")
            lines.append(f"{title} keys: {shown}")
    return lines


def torch_load_failure(error: Exception) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in one line and without torch's advice
    to retry with ``weights_only=False`` (which runs whatever code the file holds)."""
    text = str(error)
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().split("\n", 1)[0]
        detail = detail.split(". Please use", 1)[0]
        return f"weights-only unpickler: {detail}"
    first = text.strip().split("\n", 1)[0].split(". This is an internal", 1)[0]
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def load_state_dict_file(path: str | Path, allowed_globals: tuple = ()) -> dict:
    """``torch.load`` with ``weights_only=True`` (plus ``allowed_globals``, harmless classes some
    trainers save beside the weights), turning torch's errors into one clear message."""
    try:
        with torch.serialization.safe_globals(list(allowed_globals)), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a truncated or foreign file
        raise ModelError(
            f"could not read {path}: not a PyTorch checkpoint of weights "
            f"({torch_load_failure(error)}); is it the right file, and "
            f"complete? If it was downloaded, delete it and run the command again"
        ) from error
    if not isinstance(obj, dict):
        raise ModelError(f"{path} holds a {type(obj).__name__}, not a dict of weights")
    return obj



WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


WRAPPER_KEYS = ("state_dict", "model")  # training checkpoints keep the weights under one of these


def unwrap_state_dict(obj: dict, source: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensors of a state dict saved bare or inside a ``state_dict``/``model`` wrapper, with
    a DataParallel ``module.`` prefix stripped; plus notes saying what was unwrapped."""
    notes = []
    while not all(torch.is_tensor(v) for v in obj.values()):
        key = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if key is None:
            others = sorted(k for k, v in obj.items() if not torch.is_tensor(v))
            raise ModelError(f"{source} is not a state dict: {', '.join(others[:8])} are not "
                             f"tensors, and it has no {' or '.join(WRAPPER_KEYS)} entry to unwrap")
        obj = obj[key]
        notes.append(f"took the weights under {key!r}")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
        notes.append("stripped the 'module.' prefix")
    return dict(obj), notes


def read_weights_file(path: str | Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A state dict from ``.pth``/``.pt``/``.bin`` (``weights_only=True``) or ``.safetensors``."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"--weights {path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj = load_file(str(path), device="cpu")
        except Exception as error:  # safetensors raises its own error types for a bad header
            raise ModelError(f"could not read {path} as safetensors ({type(error).__name__}: "
                             f"{error}); is the file complete?") from error
    elif suffix in WEIGHT_SUFFIXES:
        obj = load_state_dict_file(path)
    else:
        raise ModelError(f"--weights {path}: expected a state dict file ending in "
                         f"{', '.join(WEIGHT_SUFFIXES)}")
    return unwrap_state_dict(obj, str(path))

