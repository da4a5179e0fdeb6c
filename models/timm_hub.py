"""Where a timm model's pretrained weights are on this machine: huggingface_hub's cache or
torch's hub cache, fetched only after one quick probe says the network is there.

Pretrained weights are never fetched behind the user's back without that check: with no cached
file and no network the error names the file to fetch and ``--weights`` within seconds, instead
of huggingface_hub's minute of retries.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from models.errors import ModelError
from models.weights import file_sha256

PROBE_TIMEOUT_S = 5.0  # one HEAD request to the hub before downloading, no retries


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return constants.HF_HUB_OFFLINE or flag in ("1", "ON", "YES", "TRUE")


def _no_weights_error(what: str, url: str, reason: str) -> ModelError:
    return ModelError(
        f"no pretrained weights for {what} in the local cache, and {reason}: download {url} "
        f"and pass it with --weights FILE (or run once with network access; --random-init gives "
        "a random-init lower bound)"
    )


def _hub_candidates(filename: str) -> list[str]:
    """The safetensors file timm prefers, then ``filename`` itself (timm's own order)."""
    if filename.endswith(".safetensors"):
        return [filename]
    safe = {"pytorch_model.bin": "model.safetensors",
            "open_clip_pytorch_model.bin": "open_clip_model.safetensors"}.get(filename)
    if safe is None and filename.endswith(".bin"):
        safe = filename[: -len(".bin")] + ".safetensors"
    return [safe, filename] if safe else [filename]


def _hub_file(hub_id: str, filename: str, what: str) -> Path:
    """The hub file from huggingface_hub's cache, else downloaded after one quick probe."""
    from huggingface_hub import (
        get_hf_file_metadata,
        hf_hub_download,
        hf_hub_url,
        try_to_load_from_cache,
    )
    from huggingface_hub.errors import EntryNotFoundError

    repo, _, revision = hub_id.partition("@")
    revision = revision or None
    candidates = _hub_candidates(filename)
    for candidate in candidates:
        cached = try_to_load_from_cache(repo, candidate, revision=revision)
        if isinstance(cached, str):
            return Path(cached)
    url = hf_hub_url(repo, candidates[0], revision=revision)
    if _offline():
        raise _no_weights_error(what, url, "HF_HUB_OFFLINE is set")
    for candidate in candidates:
        url = hf_hub_url(repo, candidate, revision=revision)
        try:
            get_hf_file_metadata(url, timeout=PROBE_TIMEOUT_S)
        except EntryNotFoundError:
            continue
        except Exception as error:  # httpx/OSError/HTTP errors: the hub is not reachable
            raise _no_weights_error(what, url, f"the hub is not reachable ({type(error).__name__})"
                                    ) from error
        return Path(hf_hub_download(repo, candidate, revision=revision))
    raise ModelError(f"the hub has none of {', '.join(candidates)} for {what} ({hub_id})")


def _url_file(url: str, what: str) -> Path:
    """Weights timm keeps at a plain URL: torch's hub cache, else downloaded after one probe."""
    import urllib.request
    from urllib.parse import urlparse

    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    if cached.is_file():
        return cached
    if _offline():
        raise _no_weights_error(what, url, "HF_HUB_OFFLINE is set")
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"),
                               timeout=PROBE_TIMEOUT_S).close()
    except Exception as error:  # URLError, timeouts, HTTP errors
        raise _no_weights_error(what, url, f"it is not reachable ({type(error).__name__})"
                                ) from error
    cached.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(cached), progress=True)
    return cached


def pretrained_file(cfg: dict[str, Any], what: str) -> Path:
    """The local file of a timm pretrained config's weights (fetched only when reachable)."""
    if cfg.get("hf_hub_id"):
        return _hub_file(cfg["hf_hub_id"], cfg.get("hf_hub_filename") or "pytorch_model.bin",
                         what)
    if cfg.get("url"):
        return _url_file(cfg["url"], what)
    raise ModelError(f"timm has no pretrained weights for {what}: pass --weights FILE, or "
                     "--random-init for a random-init lower bound")


def weights_sha256(path: Path) -> str:
    """A hub blob is named by its sha256 (LFS files); other files are hashed."""
    blob = Path(os.path.realpath(path))
    return blob.name if _SHA256.fullmatch(blob.name) else file_sha256(blob)

