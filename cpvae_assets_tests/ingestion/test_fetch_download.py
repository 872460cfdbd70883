"""Downloads of LINCS files: verification and atomic rename, resume with Range, sha256 and size
mismatches, interrupted downloads, and no second download of a verified file. Everything runs against
the ``server`` fixture (``support/file_server.py``), which measures what was sent per request."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from cpvae_assets.ingestion.fetch import FetchError, ManifestEntry, fetch_file
from cpvae_assets.ingestion.registry import dataset_spec
from cpvae_assets.orchestration.resources import LincsRemoteResource
from cpvae_assets.storage.hashing import sha256_of
from cpvae_assets_tests.support.file_server import (
    MB,
    PAYLOAD,
    PAYLOAD_SHA,
    FileServer,
    entry_for,
    leftovers,
    write_manifest,
)

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
