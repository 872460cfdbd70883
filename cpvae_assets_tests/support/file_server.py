"""A ``ThreadingHTTPServer`` for the download tests (the ``server`` fixture in the top-level conftest):
on 127.0.0.1, over https with the tests' own CA, it serves seeded random bytes, honours (or, on
request, ignores) ``Range: bytes=N-``, can drop the connection halfway, and logs how many body bytes
it sent per request, so resume and "no re-download" are measured, not assumed."""

from __future__ import annotations

import hashlib
import http.server
import random
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cpvae_assets.ingestion.fetch import ManifestEntry

MB = 1 << 20
PAYLOAD = random.Random(20210527).randbytes(3 * MB + 12345)  # not a multiple of the 1 MB read size
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Served:
    """One request as the server saw it."""

    path: str
    range: str | None
    status: int
    body_bytes: int


@dataclass
class FileServer:
    """Handle on the running test server: change ``mode`` between requests, read ``log``."""

    base_url: str
    files: dict[str, bytes]
    mode: str = "normal"  # normal | ignore_range | drop | chunked_drop
    _log: list[Served] = field(default_factory=list)
    _in_flight: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def begin(self) -> None:
        """Called before a handler sends anything, so a finished client implies it was counted."""
        with self._cond:
            self._in_flight += 1

    def record(self, served: Served) -> None:
        with self._cond:
            self._log.append(served)
            self._in_flight -= 1
            self._cond.notify_all()

    @property
    def log(self) -> list[Served]:
        """The finished requests, once every started handler has logged what it sent."""
        with self._cond:
            assert self._cond.wait_for(lambda: self._in_flight == 0, timeout=10), "a handler never finished"
            return list(self._log)

    @property
    def requests(self) -> int:
        return len(self.log)

    def body_bytes(self) -> int:
        return sum(s.body_bytes for s in self.log)


def handler_for(state: FileServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def _send_body(self, body: bytes) -> int:
            self.wfile.write(body)
            self.wfile.flush()
            return len(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            state.begin()
            name = self.path.lstrip("/")
            range_header = self.headers.get("Range")
            data = state.files.get(name)
            if data is None:
                self.send_error(404)
                state.record(Served(name, range_header, 404, 0))
                return
            start = 0
            status = 200
            if range_header and state.mode != "ignore_range":
                match = re.fullmatch(r"bytes=(\d+)-", range_header)
                assert match, f"client sent an unexpected Range header {range_header!r}"
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    state.record(Served(name, range_header, 416, 0))
                    return
                status = 206
            body = data[start:]
            if state.mode == "chunked_drop":
                self.protocol_version = "HTTP/1.1"
                self.send_response(status)
                self.send_header("Transfer-Encoding", "chunked")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Connection", "close")
                self.end_headers()
                half = body[: len(body) // 2]
                sent = 0
                for i in range(0, len(half), 64 * 1024):
                    piece = half[i : i + 64 * 1024]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    sent += len(piece)
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)  # no terminating 0-chunk
                self.close_connection = True
                state.record(Served(name, range_header, status, sent))
                return
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if state.mode == "drop":
                sent = self._send_body(body[: len(body) // 2])
                self.connection.shutdown(socket.SHUT_RDWR)  # promised Content-Length never arrives
                self.close_connection = True
            else:
                sent = self._send_body(body)
            state.record(Served(name, range_header, status, sent))

    return Handler


def write_manifest(path: Path, rows: list[tuple[str, str, int, str]], columns=("path", "sha256", "size_bytes", "url")) -> Path:
    lines = ["\t".join(columns)] + ["\t".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def entry_for(server: FileServer, path: str = "remote/dir/lincs.csv.gz", sha: str = PAYLOAD_SHA,
              size: int = len(PAYLOAD), name: str = "lincs.csv.gz") -> ManifestEntry:
    return ManifestEntry(path=path, sha256=sha, size_bytes=size, url=server.url(name))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []
