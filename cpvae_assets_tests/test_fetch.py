"""Downloads of LINCS files: resume with Range, sha256 verification, atomic rename, path safety, CLI.

Everything runs against a ``ThreadingHTTPServer`` on 127.0.0.1, over https with the tests' own CA, that serves seeded random bytes,
honours (or, on request, ignores) ``Range: bytes=N-``, can drop the connection halfway, and logs
how many body bytes it sent per request, so resume and "no re-download" are measured, not assumed.
"""

from __future__ import annotations

import hashlib
import http.server
import random
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cpvae_assets.cli import main
from cpvae_assets.ingestion.fetch import FetchError, ManifestEntry, fetch_file, read_manifest
from cpvae_assets.ingestion.registry import dataset_spec
from cpvae_assets.orchestration.resources import LincsRemoteResource
from cpvae_assets.storage.hashing import sha256_of
from cpvae_assets.storage.paths import UnsafePathError, landing_dir

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


def _handler(state: FileServer) -> type[http.server.BaseHTTPRequestHandler]:
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


@pytest.fixture
def server(tls_context) -> FileServer:
    state = FileServer(base_url="", files={"lincs.csv.gz": PAYLOAD, "other.bin": PAYLOAD[:1000]})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.socket = tls_context.wrap_socket(httpd.socket, server_side=True)
    httpd.daemon_threads = True
    state.base_url = f"https://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def write_manifest(path: Path, rows: list[tuple[str, str, int, str]], columns=("path", "sha256", "size_bytes", "url")) -> Path:
    lines = ["\t".join(columns)] + ["\t".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def entry_for(server: FileServer, path: str = "remote/dir/lincs.csv.gz", sha: str = PAYLOAD_SHA,
              size: int = len(PAYLOAD), name: str = "lincs.csv.gz") -> ManifestEntry:
    return ManifestEntry(path=path, sha256=sha, size_bytes=size, url=server.url(name))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- plain download


def test_fetch_file_downloads_verifies_and_renames(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "landing" / "ds"
    target = fetch_file(entry_for(server), dest, progress=False)

    assert target == (dest / "lincs.csv.gz").resolve()
    assert target.read_bytes() == PAYLOAD
    assert sha256_of(target) == PAYLOAD_SHA
    assert leftovers(dest) == ["lincs.csv.gz"]  # no .part, nothing else
    assert server.requests == 1
    assert server.log[0].range is None and server.log[0].status == 200
    assert server.log[0].body_bytes == len(PAYLOAD)


def test_fetch_via_manifest_selects_the_datasets_entries(server: FileServer, tmp_path: Path) -> None:
    spec = dataset_spec("lincs_cp_level5")
    (wanted,) = spec.remote_files
    manifest = write_manifest(tmp_path / "manifest.tsv", [
        ("remote/dir/lincs.csv.gz", PAYLOAD_SHA, len(PAYLOAD), server.url("lincs.csv.gz")),
        (wanted, hashlib.sha256(PAYLOAD[:1000]).hexdigest(), 1000, server.url("other.bin")),
    ])
    dest = tmp_path / "dest"
    paths = LincsRemoteResource(manifest=str(manifest)).fetch(spec, dest)
    assert [p.name for p in paths] == [Path(wanted).name]
    assert paths[0].read_bytes() == PAYLOAD[:1000]
    assert leftovers(dest) == [Path(wanted).name]
    other = write_manifest(tmp_path / "other.tsv", [("remote/dir/lincs.csv.gz", PAYLOAD_SHA, len(PAYLOAD), server.url("lincs.csv.gz"))])
    with pytest.raises(ValueError, match="lists files not in the manifest"):
        LincsRemoteResource(manifest=str(other)).fetch(spec, dest)


# --------------------------------------------------------------------------- resume


def test_resume_sends_only_the_remainder(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "lincs.csv.gz.part").write_bytes(PAYLOAD[:MB])

    target = fetch_file(entry_for(server), dest, progress=False)

    assert target.read_bytes() == PAYLOAD
    assert server.requests == 1
    (served,) = server.log
    assert served.range == f"bytes={MB}-"
    assert served.status == 206
    assert served.body_bytes == len(PAYLOAD) - MB
    assert leftovers(dest) == ["lincs.csv.gz"]


def test_complete_part_file_is_finished_after_416(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "lincs.csv.gz.part").write_bytes(PAYLOAD)

    target = fetch_file(entry_for(server), dest, progress=False)

    assert target.read_bytes() == PAYLOAD
    assert [s.status for s in server.log] == [416]
    assert server.body_bytes() == 0
    assert leftovers(dest) == ["lincs.csv.gz"]


def test_oversized_part_file_is_discarded(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "lincs.csv.gz.part").write_bytes(PAYLOAD + b"garbage")

    target = fetch_file(entry_for(server), dest, progress=False)

    assert target.read_bytes() == PAYLOAD
    assert server.log[0].range is None and server.log[0].body_bytes == len(PAYLOAD)
    assert leftovers(dest) == ["lincs.csv.gz"]


def test_server_ignoring_range_still_gives_a_correct_file(server: FileServer, tmp_path: Path) -> None:
    server.mode = "ignore_range"
    dest = tmp_path / "dest"
    dest.mkdir()
    # a part file whose bytes would corrupt the result if they were kept in front of a full body
    (dest / "lincs.csv.gz.part").write_bytes(PAYLOAD[:MB])

    target = fetch_file(entry_for(server), dest, progress=False)

    assert target.read_bytes() == PAYLOAD
    (served,) = server.log
    assert served.range == f"bytes={MB}-"  # the client asked for a range ...
    assert served.status == 200 and served.body_bytes == len(PAYLOAD)  # ... and got the whole file
    assert leftovers(dest) == ["lincs.csv.gz"]


# --------------------------------------------------------------------------- verification


def test_sha256_mismatch_is_refused_and_cleaned_up(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    wrong = hashlib.sha256(b"something else").hexdigest()

    with pytest.raises(FetchError, match="sha256"):
        fetch_file(entry_for(server, sha=wrong), dest, progress=False)

    assert not (dest / "lincs.csv.gz").exists()
    assert not (dest / "lincs.csv.gz.part").exists()
    assert leftovers(dest) == []


def test_size_mismatch_is_refused_without_final_file(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(FetchError, match="bytes"):
        fetch_file(entry_for(server, size=len(PAYLOAD) + 1), dest, progress=False)
    assert not (dest / "lincs.csv.gz").exists()


def test_http_error_becomes_fetch_error(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="404"):
        fetch_file(entry_for(server, name="missing.bin"), tmp_path / "dest", progress=False)
    assert leftovers(tmp_path / "dest") == []


def test_unreachable_server_becomes_fetch_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    entry = ManifestEntry("a/b.bin", PAYLOAD_SHA, len(PAYLOAD), f"https://127.0.0.1:{port}/b.bin")
    with pytest.raises(FetchError, match="interrupted"):
        fetch_file(entry, tmp_path / "dest", progress=False, timeout=5)
    assert not (tmp_path / "dest" / "b.bin").exists()


# --------------------------------------------------------------------------- interruption


@pytest.mark.parametrize("mode", ["drop", "chunked_drop"])
def test_interrupted_download_keeps_part_and_resumes(server: FileServer, tmp_path: Path, mode: str) -> None:
    dest = tmp_path / "dest"
    server.mode = mode

    with pytest.raises(FetchError):
        fetch_file(entry_for(server), dest, progress=False, timeout=10)

    part = dest / "lincs.csv.gz.part"
    assert not (dest / "lincs.csv.gz").exists()
    assert part.exists()
    kept = part.stat().st_size
    assert 0 < kept < len(PAYLOAD)
    assert part.read_bytes() == PAYLOAD[:kept]  # what was kept is a correct prefix

    server.mode = "normal"
    target = fetch_file(entry_for(server), dest, progress=False)

    assert target.read_bytes() == PAYLOAD
    assert leftovers(dest) == ["lincs.csv.gz"]
    second = server.log[-1]
    assert second.range == f"bytes={kept}-" and second.status == 206
    assert second.body_bytes == len(PAYLOAD) - kept


# --------------------------------------------------------------------------- idempotence


def test_verified_file_is_not_downloaded_again(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    first = fetch_file(entry_for(server), dest, progress=False)
    mtime = first.stat().st_mtime_ns
    assert server.requests == 1

    again = fetch_file(entry_for(server), dest, progress=False)

    assert again == first
    assert server.requests == 1  # no request at all
    assert first.stat().st_mtime_ns == mtime


def test_corrupt_existing_file_is_replaced(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    corrupt = bytearray(PAYLOAD)
    corrupt[100] ^= 0xFF  # same size, wrong content
    (dest / "lincs.csv.gz").write_bytes(bytes(corrupt))

    target = fetch_file(entry_for(server), dest, progress=False)

    assert target.read_bytes() == PAYLOAD
    assert server.requests == 1
    assert leftovers(dest) == ["lincs.csv.gz"]


# --------------------------------------------------------------------------- manifest parsing


def test_read_manifest_parses_entries(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.tsv", [("a/b/c.csv.gz", PAYLOAD_SHA, 123, "http://127.0.0.1:1/c")])
    (entry,) = read_manifest(manifest)
    assert entry == ManifestEntry("a/b/c.csv.gz", PAYLOAD_SHA, 123, "http://127.0.0.1:1/c")
    assert isinstance(entry.size_bytes, int)
    assert entry.file_name == "c.csv.gz"


def test_shipped_manifest_is_well_formed() -> None:
    from cpvae_assets.orchestration.resources import DEFAULT_MANIFEST

    entries = read_manifest(DEFAULT_MANIFEST)
    assert entries
    spec = dataset_spec("lincs_cp_level5")
    assert set(spec.remote_files) <= {e.path for e in entries}
    for e in entries:
        assert e.file_name  # every name passes check_name
        assert e.size_bytes > 0


def test_read_manifest_refuses_missing_column(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.tsv", [("a/c.bin", PAYLOAD_SHA, 10)], columns=("path", "sha256", "size_bytes"))
    with pytest.raises(FetchError, match="url"):
        read_manifest(manifest)


@pytest.mark.parametrize("sha", [PAYLOAD_SHA[:-1], PAYLOAD_SHA + "0", "z" * 64, "sha256:" + PAYLOAD_SHA[7:]])
def test_read_manifest_refuses_malformed_sha256(tmp_path: Path, sha: str) -> None:
    manifest = write_manifest(tmp_path / "m.tsv", [
        ("a/good.bin", PAYLOAD_SHA, 10, "http://127.0.0.1:1/good"),
        ("a/bad.bin", sha, 10, "http://127.0.0.1:1/bad"),
    ])
    with pytest.raises(FetchError, match="sha256") as info:
        read_manifest(manifest)
    assert "a/bad.bin" in str(info.value)


def test_read_manifest_refuses_empty_cells(tmp_path: Path) -> None:
    manifest = tmp_path / "m.tsv"
    manifest.write_text(f"path\tsha256\tsize_bytes\turl\na/c.bin\t{PAYLOAD_SHA}\t\thttp://127.0.0.1:1/c\n")
    with pytest.raises(FetchError, match="empty"):
        read_manifest(manifest)


# --------------------------------------------------------------------------- path safety


@pytest.mark.parametrize("path", ["..", "a/..", "../..", "/", "", "a/.hidden", "a/b c", "a/" + "x" * 200])
def test_unsafe_manifest_file_names_are_refused(server: FileServer, tmp_path: Path, path: str) -> None:
    entry = ManifestEntry(path, PAYLOAD_SHA, len(PAYLOAD), server.url("lincs.csv.gz"))
    with pytest.raises(UnsafePathError):
        entry.file_name
    with pytest.raises(UnsafePathError):
        fetch_file(entry, tmp_path / "dest", progress=False)
    assert server.requests == 0  # refused before any network traffic


def test_traversal_in_manifest_path_cannot_leave_dest(server: FileServer, tmp_path: Path) -> None:
    """'../../etc/x' only contributes its last component: the file lands in dest, never above it."""
    dest = tmp_path / "a" / "b" / "dest"
    entry = ManifestEntry("../../etc/lincs.csv.gz", PAYLOAD_SHA, len(PAYLOAD), server.url("lincs.csv.gz"))
    assert entry.file_name == "lincs.csv.gz"
    target = fetch_file(entry, dest, progress=False)
    assert target == (dest / "lincs.csv.gz").resolve()
    assert not (tmp_path / "a" / "etc").exists() and not (tmp_path / "etc").exists()


def test_symlinked_target_leading_outside_is_refused(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "lincs.csv.gz").symlink_to(outside / "lincs.csv.gz")
    with pytest.raises(UnsafePathError):
        fetch_file(entry_for(server), dest, progress=False)
    assert leftovers(outside) == []
    assert server.requests == 0


# --------------------------------------------------------------------------- resource + CLI


@pytest.fixture
def level5_manifest(server: FileServer, tmp_path: Path) -> tuple[Path, str]:
    (remote,) = dataset_spec("lincs_cp_level5").remote_files
    manifest = write_manifest(tmp_path / "manifest.tsv", [
        (remote, PAYLOAD_SHA, len(PAYLOAD), server.url("lincs.csv.gz")),
        ("unrelated/other.bin", hashlib.sha256(PAYLOAD[:1000]).hexdigest(), 1000, server.url("other.bin")),
    ])
    return manifest, remote


def test_cli_fetch_lands_verified_file(server: FileServer, lake: Path, level5_manifest, capsys) -> None:
    manifest, remote = level5_manifest
    spec = dataset_spec("lincs_cp_level5")
    landing = landing_dir(lake, "lincs_cp_level5")
    resource = LincsRemoteResource(manifest=str(manifest))
    (before,) = resource.status(spec, landing)
    assert before["status"] == "absent" and before["path"] == remote

    code = main(["--lake", str(lake), "fetch", "lincs_cp_level5", "--manifest", str(manifest), "--quiet"])

    assert code == 0
    target = landing / Path(remote).name
    assert target.read_bytes() == PAYLOAD
    assert leftovers(landing) == [Path(remote).name]
    assert [s.path for s in server.log] == ["lincs.csv.gz"]  # only the dataset's file was fetched
    out = capsys.readouterr().out
    assert "verified" in out and Path(remote).name in out
    (after,) = resource.status(spec, landing)
    assert after["status"] == "verified"
    assert after["sha256"] == PAYLOAD_SHA and after["size_bytes"] == len(PAYLOAD)

    # a second run is a no-op on the network
    assert main(["--lake", str(lake), "fetch", "lincs_cp_level5", "--manifest", str(manifest), "--quiet"]) == 0
    assert server.requests == 1


def test_resource_status_absent_for_wrong_content(lake: Path, level5_manifest) -> None:
    manifest, remote = level5_manifest
    landing = landing_dir(lake, "lincs_cp_level5")
    landing.mkdir(parents=True)
    (landing / Path(remote).name).write_bytes(PAYLOAD[:-1] + b"\x00")  # right size, wrong bytes
    (row,) = LincsRemoteResource(manifest=str(manifest)).status(dataset_spec("lincs_cp_level5"), landing)
    assert row["status"] == "absent"


def test_cli_fetch_mismatching_manifest_exits_2(server: FileServer, lake: Path, tmp_path: Path, capsys) -> None:
    (remote,) = dataset_spec("lincs_cp_level5").remote_files
    wrong = hashlib.sha256(b"not the file").hexdigest()
    manifest = write_manifest(tmp_path / "bad.tsv", [(remote, wrong, len(PAYLOAD), server.url("lincs.csv.gz"))])

    code = main(["--lake", str(lake), "fetch", "lincs_cp_level5", "--manifest", str(manifest), "--quiet"])

    assert code == 2
    err = capsys.readouterr().err
    assert "cpvae fetch" in err and "sha256" in err
    landing = landing_dir(lake, "lincs_cp_level5")
    assert leftovers(landing) == []  # neither the file nor a .part


def test_cli_fetch_manifest_without_dataset_file_exits_2(server: FileServer, lake: Path, tmp_path: Path, capsys) -> None:
    manifest = write_manifest(tmp_path / "other.tsv", [("x/other.bin", PAYLOAD_SHA, 1, server.url("other.bin"))])
    code = main(["--lake", str(lake), "fetch", "lincs_cp_level5", "--manifest", str(manifest), "--quiet"])
    assert code == 2
    assert "not in the manifest" in capsys.readouterr().err
    assert server.requests == 0


def test_cli_fetch_unknown_dataset_exits_2(lake: Path, tmp_path: Path, capsys) -> None:
    manifest = write_manifest(tmp_path / "m.tsv", [])
    code = main(["--lake", str(lake), "fetch", "no_such_dataset", "--manifest", str(manifest), "--quiet"])
    assert code == 2
    assert "no_such_dataset" in capsys.readouterr().err
