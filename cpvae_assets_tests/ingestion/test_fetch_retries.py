"""Downloads retry transient failures (HTTP 5xx / 429, dropped connections) a bounded number of
times with exponential backoff, resuming each time; permanent errors fail at once."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from cpvae_assets.ingestion import fetch
from cpvae_assets.ingestion.fetch import FetchError, ManifestEntry, fetch_file
from cpvae_assets_tests.support.reliability_support import Script, serve

DATA = os.urandom(300_000)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff delays, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(fetch, "BACKOFF_SECONDS", 0.5)
    monkeypatch.setattr(fetch.time, "sleep", slept.append)
    return slept


def download(script: Script, dest: Path, tls) -> Path:
    httpd, url = serve(script, tls)
    try:
        entry = ManifestEntry("a/file.csv.gz", hashlib.sha256(DATA).hexdigest(), len(DATA), url)
        return fetch_file(entry, dest, progress=False, timeout=10)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("status", [503, 500, 429])
def test_transient_failures_are_retried_with_backoff(tmp_path: Path, waits: list[float], tls_context, status: int) -> None:
    script = Script(DATA, fail_first=2, fail_status=status)
    target = download(script, tmp_path / "dest", tls_context)
    assert target.read_bytes() == DATA
    assert [s for _, s in script.requests] == [status, status, 200]
    assert waits == [0.5, 1.0]


def test_dropped_connection_is_resumed_within_one_call(tmp_path: Path, waits: list[float], tls_context) -> None:
    script = Script(DATA, drop_first=1)
    assert download(script, tmp_path / "dest", tls_context).read_bytes() == DATA
    (first, _), (second, status) = script.requests
    assert first is None and second.startswith("bytes=") and int(second[6:-1]) > 0 and status == 206
    assert waits == [0.5]
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["file.csv.gz"]


def test_a_server_that_always_fails_is_given_up_on(tmp_path: Path, waits: list[float], tls_context) -> None:
    script = Script(DATA, fail_first=1000)
    with pytest.raises(FetchError) as info:
        download(script, tmp_path / "dest", tls_context)
    message = str(info.value)
    assert "HTTP 503" in message and f"gave up after {fetch.RETRIES + 1} attempts" in message
    assert len(script.requests) == fetch.RETRIES + 1
    assert waits == [0.5 * 2**i for i in range(fetch.RETRIES)]  # bounded, exponential
    assert not (tmp_path / "dest" / "file.csv.gz").exists()


@pytest.mark.parametrize("status", [404, 403])
def test_permanent_errors_are_not_retried(tmp_path: Path, waits: list[float], tls_context, status: int) -> None:
    script = Script(DATA, fail_first=1000, fail_status=status)
    with pytest.raises(FetchError, match=f"HTTP {status}"):
        download(script, tmp_path / "dest", tls_context)
    assert len(script.requests) == 1 and waits == []
