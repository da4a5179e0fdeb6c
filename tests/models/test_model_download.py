"""The real download path against a local HTTP server that honours Range requests."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from models.download import digest_sidecar, download
from models.errors import ModelError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = PAYLOAD
    cut_after: int | None = None  # simulate a dropped connection on the first request
    requests: list[str | None] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        range_header = self.headers.get("Range")
        type(self).requests.append(range_header)
        start = int(range_header.split("=")[1].rstrip("-")) if range_header else 0
        body = self.payload[start:]
        self.send_response(206 if range_header else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).cut_after is not None:
            body = body[: type(self).cut_after]
            type(self).cut_after = None
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _RangeHandler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/ckpt.pth"
    httpd.shutdown()


def test_download_verifies_and_records_the_digest(server, tmp_path):
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    dest = download(server, tmp_path / "raw" / "ckpt.pth", sha256=digest)
    assert dest.read_bytes() == PAYLOAD
    assert digest_sidecar(dest).read_text().split()[0] == digest
    assert not Path(str(dest) + ".part").exists()


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    _RangeHandler.cut_after = 300_000
    dest = tmp_path / "ckpt.pth"
    with pytest.raises(ModelError, match="resumes it"):
        download(server, dest, timeout=5)
    part = Path(str(dest) + ".part")
    assert part.stat().st_size == 300_000 and not dest.exists()
    download(server, dest)
    assert dest.read_bytes() == PAYLOAD
    assert _RangeHandler.requests[-1] == "bytes=300000-"


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    dest = tmp_path / "ckpt.pth"
    with pytest.raises(ModelError, match="checksum mismatch"):
        download(server, dest, sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_a_reused_file_is_checked_against_its_first_digest(server, tmp_path):
    dest = download(server, tmp_path / "ckpt.pth")
    dest.write_bytes(PAYLOAD[:-1] + b"\x00")  # corrupted after the first download
    with pytest.raises(ModelError, match="checksum mismatch .* delete it"):
        download(server, dest)


def test_torchvision_style_prefix_is_checked(server, tmp_path):
    prefix = hashlib.sha256(PAYLOAD).hexdigest()[:8]
    download(server, tmp_path / "ok.pth", sha256_prefix=prefix)
    with pytest.raises(ModelError, match="checksum mismatch"):
        download(server, tmp_path / "bad.pth", sha256_prefix="deadbeef")


def test_unreachable_host_names_the_url_and_the_way_out(tmp_path):
    url = "http://127.0.0.1:9/nothing.pth"
    with pytest.raises(
        ModelError, match=r"download of http://127.0.0.1:9/nothing.pth failed.*--from"
    ):
        download(url, tmp_path / "x.pth", timeout=2)
