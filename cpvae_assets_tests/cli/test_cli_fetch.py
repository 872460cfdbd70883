"""``cpvae fetch`` and the remote-files resource behind it: a dataset's file lands verified, a second
run is a no-op on the network, a mismatching manifest or unknown dataset exits 2."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cpvae_assets.cli import main
from cpvae_assets.ingestion.registry import dataset_spec
from cpvae_assets.orchestration.resources import LincsRemoteResource
from cpvae_assets.storage.paths import landing_dir
from cpvae_assets_tests.support.file_server import PAYLOAD, PAYLOAD_SHA, FileServer, leftovers, write_manifest

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
