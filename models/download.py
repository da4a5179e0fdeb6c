"""Fetch a checkpoint once: resumable, with a byte progress bar, checksummed, renamed into place
only when complete."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from models.errors import ModelError
from models.weights import file_sha256
from transfer.console import progress

CHUNK = 1 << 20


def digest_sidecar(path: Path) -> Path:
    """The file that records the sha256 of a download, so a reuse can be verified."""
    return path.with_name(path.name + ".sha256")


def verify_digest(
    path: Path, digest: str, expected: str | None, expected_prefix: str | None, url: str
) -> None:
    if (expected and digest != expected) or (
        expected_prefix and not digest.startswith(expected_prefix)
    ):
        want = expected or f"{expected_prefix}..."
        raise ModelError(
            f"checksum mismatch for {path}: sha256 {digest}, expected {want}. The file is "
            f"corrupt or not the published one; delete it and download again from {url}"
        )


def download(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), verify, and record its sha256.

    A file already at ``dest`` is verified against the digest recorded at its first download.
    """
    dest = Path(dest)
    sidecar = digest_sidecar(dest)
    if dest.exists():
        digest = file_sha256(dest)
        recorded = sidecar.read_text().split()[0] if sidecar.exists() else None
        verify_digest(dest, digest, sha256 or recorded, sha256_prefix, url)
        if recorded is None:
            sidecar.write_text(f"{digest}  {dest.name}\n")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "ssl-transfer"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if "text/html" in response.headers.get("Content-Type", ""):
                raise ModelError(
                    f"{url} returned a web page, not a checkpoint; download it in a "
                    f"browser and pass it with --from FILE"
                )
            if start and response.status != 206:  # the server ignored the range: start over
                start = 0
            total = response.headers.get("Content-Length")
            total = int(total) + start if total is not None else None
            with (
                open(part, "ab" if start else "wb") as handle,
                progress(
                    total=total,
                    initial=start,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=dest.name,
                ) as bar,
            ):
                while block := response.read(CHUNK):
                    handle.write(block)
                    bar.update(len(block))
        if total is not None and part.stat().st_size < total:
            raise ConnectionError(f"connection closed after {part.stat().st_size} of {total} bytes")
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
        kept = (
            f"; the partial file {part} is kept and the next run resumes it"
            if part.exists() and part.stat().st_size
            else ""
        )
        raise ModelError(
            f"download of {url} failed ({error}){kept}. If this machine has no internet, download "
            f"the URL elsewhere and pass the file with --from FILE"
        ) from error
    digest = file_sha256(part)
    try:
        verify_digest(part, digest, sha256, sha256_prefix, url)
    except ModelError:
        part.unlink()
        raise
    os.replace(part, dest)
    sidecar.write_text(f"{digest}  {dest.name}\n")
    return dest
