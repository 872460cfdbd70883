"""Download the public LINCS files listed in a manifest: resumable, sha256-verified, atomic.

A file is downloaded to ``<name>.part`` beside its target; an interrupted download resumes with an
HTTP Range request; the finished file is renamed into place only after its size and sha256 match
the manifest, so the landing folder never holds a file the sensor could ingest half-written.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from cpvae_assets.paths import check_name, inside

MANIFEST_COLUMNS = ("path", "sha256", "size_bytes", "url")
CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A download that failed or did not match its manifest entry; nothing was put in place."""


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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _progress(total: int, initial: int, name: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=name, disable=not enabled)


def fetch_file(entry: ManifestEntry, dest_dir: Path, progress: bool = True, timeout: float = 60.0) -> Path:
    """Bring ``entry`` into ``dest_dir``; returns the verified file. Already-present files are kept."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = inside(dest_dir, dest_dir / entry.file_name)
    if target.exists() and target.stat().st_size == entry.size_bytes and sha256_of(target) == entry.sha256:
        return target
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if have > entry.size_bytes:
        part.unlink()
        have = 0
    request = urllib.request.Request(entry.url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if have and response.status != 206:
                have = 0  # the server ignored the range: start over
            with open(part, "ab" if have else "wb") as out, _progress(entry.size_bytes, have, entry.file_name, progress) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have == entry.size_bytes:
            pass  # the part file is already complete
        else:
            raise FetchError(f"{entry.url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        raise FetchError(f"{entry.url}: download interrupted ({exc}); run again to resume from {part}") from exc
    size = part.stat().st_size
    if size != entry.size_bytes:
        raise FetchError(f"{entry.path}: got {size} bytes, manifest says {entry.size_bytes}; run again to resume")
    digest = sha256_of(part)
    if digest != entry.sha256:
        part.unlink()
        raise FetchError(f"{entry.path}: sha256 {digest} does not match the manifest's {entry.sha256}; refused and removed")
    os.replace(part, target)
    return target


def fetch(manifest: Path, paths: Iterable[str], dest_dir: Path, progress: bool = True) -> list[Path]:
    """Fetch the manifest entries whose ``path`` is in ``paths`` into ``dest_dir``."""
    entries = {e.path: e for e in read_manifest(manifest)}
    wanted = list(paths)
    unknown = [p for p in wanted if p not in entries]
    if unknown:
        raise FetchError(f"{manifest}: no entry for {unknown}")
    return [fetch_file(entries[p], dest_dir, progress) for p in wanted]
