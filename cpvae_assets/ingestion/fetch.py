"""Download the public LINCS files listed in a manifest: resumable, sha256-verified, atomic.

A file is downloaded to ``<name>.part`` beside its target; an interrupted download resumes with an
HTTP Range request; the finished file is renamed into place only after its size and sha256 match
the manifest, so the landing folder never holds a file the sensor could ingest half-written. Only
https is accepted, a download stops at the declared size, and transient
failures are retried a bounded number of times with exponential backoff, resuming each time.
"""

from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from cpvae_assets.storage.hashing import sha256_of
from cpvae_assets.storage.paths import check_name, inside

MANIFEST_COLUMNS = ("path", "sha256", "size_bytes", "url")
CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A download that failed or did not match its manifest entry; nothing was put in place.
    ``transient``: the network gave up (worth trying again later), as opposed to a refusal."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    sha256: str
    size_bytes: int
    url: str

    @property
    def file_name(self) -> str:
        return check_name(PurePosixPath(self.path).name, "manifest file name")


def read_manifest(path: Path) -> list[ManifestEntry]:
    frame = pd.read_csv(path, sep="\t", dtype=str)
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise FetchError(f"{path}: manifest lacks column(s) {missing}")
    if frame[list(MANIFEST_COLUMNS)].isna().any().any():
        raise FetchError(f"{path}: manifest has empty cells")
    bad = frame[~frame["sha256"].str.fullmatch(r"[0-9a-f]{64}")]
    if len(bad):
        raise FetchError(f"{path}: entry {bad['path'].iloc[0]!r} has a malformed sha256")
    return [ManifestEntry(r.path, r.sha256, int(r.size_bytes), r.url) for r in frame.itertuples()]


def _progress(total: int, initial: int, name: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=name, disable=not enabled)


# transient failures (dropped connection, timeout, HTTP 5xx / 429) are retried with exponential backoff
RETRIES = 3
BACKOFF_SECONDS = 1.0


def check_url(url: str) -> str:
    """Only ``https``: no ``file:``, ``ftp:`` or plain-text downloads whose bytes anyone on the way
    could change before the sha256 check."""
    if urllib.parse.urlsplit(url).scheme == "https":
        return url
    raise FetchError(f"{url}: refused, downloads must use https")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect may not downgrade to http or leave for another scheme."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return super().redirect_request(req, fp, code, msg, headers, check_url(newurl))


_OPENER = urllib.request.build_opener(_CheckedRedirects)


class _Transient(Exception):
    """A failure worth retrying; carries the message to report if retries run out."""


def _download(entry: ManifestEntry, part: Path, progress: bool, timeout: float) -> None:
    """One attempt: append to ``part`` (resuming with Range), never beyond the declared size."""
    have = part.stat().st_size if part.exists() else 0
    if have > entry.size_bytes:
        part.unlink()
        have = 0
    request = urllib.request.Request(entry.url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            if have and response.status != 206:
                have = 0  # the server ignored the range: start over
            remaining = entry.size_bytes - have
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > remaining:
                raise FetchError(f"{entry.url}: server announces {int(declared) + have} bytes, the manifest "
                                 f"{entry.size_bytes}; refused")
            with open(part, "ab" if have else "wb") as out, _progress(entry.size_bytes, have, entry.file_name, progress) as bar:
                while block := response.read(min(CHUNK, remaining + 1)):
                    if len(block) > remaining:  # more bytes than declared: stop, never store them
                        out.close()
                        part.unlink()
                        raise FetchError(f"{entry.url}: server sent more than the manifest's {entry.size_bytes} "
                                         "bytes; refused and removed")
                    out.write(block)
                    remaining -= len(block)
                    bar.update(len(block))
            if declared is not None and declared.isdigit() and remaining > entry.size_bytes - have - int(declared):
                raise _Transient(f"{entry.url}: connection closed before the announced {declared} bytes arrived")
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have == entry.size_bytes:
            return  # the part file is already complete
        message = f"{entry.url}: HTTP {exc.code} {exc.reason}"
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Transient(message) from exc
        raise FetchError(message) from exc
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        raise _Transient(f"{entry.url}: download interrupted ({exc}); run again to resume from {part}") from exc


def fetch_file(entry: ManifestEntry, dest_dir: Path, progress: bool = True, timeout: float = 60.0) -> Path:
    """Bring ``entry`` into ``dest_dir``; returns the verified file. Already-present files are kept."""
    check_url(entry.url)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = inside(dest_dir, dest_dir / entry.file_name)
    if target.exists() and target.stat().st_size == entry.size_bytes and sha256_of(target) == entry.sha256:
        return target
    part = target.with_name(target.name + ".part")
    for attempt in range(RETRIES + 1):
        try:
            _download(entry, part, progress, timeout)
            break
        except _Transient as exc:
            if attempt == RETRIES:
                raise FetchError(f"{exc} (gave up after {RETRIES + 1} attempts)", transient=True) from exc
            time.sleep(BACKOFF_SECONDS * 2**attempt)
    size = part.stat().st_size if part.exists() else 0
    if size != entry.size_bytes:
        raise FetchError(f"{entry.path}: got {size} bytes, manifest says {entry.size_bytes}; run again to resume",
                         transient=True)
    digest = sha256_of(part)
    if digest != entry.sha256:
        part.unlink()
        raise FetchError(f"{entry.path}: sha256 {digest} does not match the manifest's {entry.sha256}; refused and removed")
    os.replace(part, target)
    return target
