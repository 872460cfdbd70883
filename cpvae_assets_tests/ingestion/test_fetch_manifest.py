"""The download manifest: parsing and refusals (missing column, malformed sha256, empty cells), the
shipped manifest, and path safety of the file names it gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpvae_assets.ingestion.fetch import FetchError, ManifestEntry, fetch_file, read_manifest
from cpvae_assets.ingestion.registry import dataset_spec
from cpvae_assets.storage.paths import UnsafePathError
from cpvae_assets_tests.support.file_server import (
    PAYLOAD,
    PAYLOAD_SHA,
    FileServer,
    entry_for,
    leftovers,
    write_manifest,
)

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
