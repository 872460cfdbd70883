"""Shared fixtures: every test gets its own lake, never the repository's data_lake/.

Fixtures used by more than one test folder live here too (the download test server, a populated
lake, a Dagster test instance); those of one folder live in that folder's conftest.py."""

from __future__ import annotations

import http.server
import os
import sys
import threading
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from cpvae_assets.storage.paths import DATA_FILE, partition_dir, table_file
from cpvae_assets.storage.tables import write_table
from cpvae_assets_tests.support.file_server import PAYLOAD, FileServer, handler_for
from cpvae_assets_tests.support.lake_tables import profiles


def pytest_configure(config: pytest.Config) -> None:
    """Every Dagster run calls ``logging.config.dictConfig``, which closes every logging handler of the
    process. absl's (TensorFlow's) handler writes to the ``sys.stderr`` of the moment absl was imported:
    inside a test, pytest's capture stream, which it then closed, so a later test with ``capsys`` that
    materialises failed with "I/O operation on closed file". absl never closes the real stderr."""
    import absl.logging

    absl.logging.get_absl_handler().python_handler.stream = sys.__stderr__


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The daemon tests first in collection order. pytest-xdist (Makefile) still hands out the files
    with the most tests first, so the two one-test daemon files go out at the start of the one-test
    tail, to one worker in turn, while the other works through the rest; the two daemon sessions side
    by side on two cores were slower (947 s against 882 s for the suite)."""
    items.sort(key=lambda item: item.get_closest_marker("daemon") is None)


@pytest.fixture(autouse=True)
def _isolated_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPVAE_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    os.makedirs(tmp_path / "dagster_home", exist_ok=True)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    path = tmp_path / "lake"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def _fast_download_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retried downloads wait milliseconds, not seconds, between attempts in tests."""
    import cpvae_assets.ingestion.fetch

    monkeypatch.setattr(cpvae_assets.ingestion.fetch, "BACKOFF_SECONDS", 0.01)


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory):
    """A certificate authority of the tests' own (trustme), and its PEM file: download tests serve
    https on 127.0.0.1, as the real sources do, and the client trusts this CA through
    ``SSL_CERT_FILE`` (in this process and in every child it starts)."""
    import trustme

    ca = trustme.CA()
    pem = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    return ca, pem


@pytest.fixture
def tls_context(test_ca, monkeypatch: pytest.MonkeyPatch):
    """The server side TLS context for 127.0.0.1; the client side trusts it via ``SSL_CERT_FILE``."""
    import ssl

    ca, pem = test_ca
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


# --------------------------------------------------------------------------- shared by several folders


@pytest.fixture
def server(tls_context) -> FileServer:
    state = FileServer(base_url="", files={"lincs.csv.gz": PAYLOAD, "other.bin": PAYLOAD[:1000]})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
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


@pytest.fixture
def populated(lake: Path) -> Path:
    """A lake with two raw datasets of different features, a side table and a two-level partition."""
    write_table(profiles(4, ["f1", "f2"]), table_file(partition_dir(lake, "raw_profiles", "a")))
    write_table(profiles(6, ["f1", "f3"], seed=2), table_file(partition_dir(lake, "raw_profiles", "b")))
    splits = profiles(4, ["f1"])
    splits["split"] = ["train", "train", "val", "test"]
    write_table(splits, table_file(partition_dir(lake, "normalised_splits", "a")))
    write_table(pd.DataFrame({"feature": ["f1"], "mean": [0.0], "std": [1.0]}),
                table_file(partition_dir(lake, "normalised_splits", "a"), "scaler"))
    write_table(pd.DataFrame({"z0": [0.1, 0.2], "z1": [1.0, 2.0]}),
                table_file(partition_dir(lake, "foo", "a", "pca")))
    # things that are not asset tables
    write_table(pd.DataFrame({"x": [1]}), lake / "landing" / "a" / "looks_like.parquet")
    write_table(pd.DataFrame({"x": [1]}), lake / "tmp" / "scratch.parquet")
    write_table(pd.DataFrame({"x": [1]}), lake / ".hidden_asset" / "dataset=a" / DATA_FILE)
    write_table(pd.DataFrame({"x": [1]}), partition_dir(lake, "foo", "a", "pca") / ".data.parquet")
    return lake


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst
