"""Shared fixtures: every test gets its own lake, never the repository's data_lake/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cpvae_assets.storage.paths import PACKAGE_DATA

REAL_CP = PACKAGE_DATA / "real" / "lincs_cellpainting_plate_SQ00015054.csv.gz"
REAL_L1000 = PACKAGE_DATA / "real" / "l1000_LJP005_A375_24H.gct.gz"


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
