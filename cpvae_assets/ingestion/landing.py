"""What is in a landing folder, keyed by content: the sensor's view of new data. No pandas here: the
sensor imports this every 30 seconds."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cpvae_assets.ingestion.registry import LOCAL_SPEC
from cpvae_assets.storage.hashing import sha256_of
from cpvae_assets.storage.paths import inside

# the profile file formats LINCS publishes (pycytominer CSV / TSV / Parquet, GCT, GCTX)
SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet", ".gct", ".gct.gz", ".gctx")


class IngestError(ValueError):
    """The landing folder as a whole cannot be loaded (no files, files that disagree)."""


def profile_format(path: Path) -> str | None:
    """The format named by the file's suffix, or None for files the loader ignores."""
    name = path.name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix.lstrip(".").removesuffix(".gz")
    return None


def landing_files(landing: Path) -> list[Path]:
    """Profile files directly in ``landing``, refusing any that resolve outside it (symlinks)."""
    if not landing.is_dir():
        raise IngestError(f"{landing}: landing folder does not exist")
    files = []
    for path in sorted(landing.iterdir()):
        if path.name.startswith(".") or path.name.endswith(".part") or profile_format(path) is None:
            continue
        inside(landing, path)
        if path.is_file():
            files.append(path)
    if not files:
        raise IngestError(f"{landing}: no profile files (expected CSV, CSV.gz, Parquet, GCT or GCTX)")
    return files


# per file: [size, mtime_ns, sha256]; the stat only decides whether to re-hash, never whether to run
FileCache = dict[str, list]


def fingerprint(landing: Path, cache: FileCache | None = None) -> tuple[str, FileCache]:
    """A sha256 over the names and contents of the profile files and ``dataset.toml`` (not mtimes)."""
    cache = cache or {}
    seen: FileCache = {}
    combined = hashlib.sha256()
    local_spec = [landing / LOCAL_SPEC] if (landing / LOCAL_SPEC).is_file() else []
    for path in landing_files(landing) + local_spec:
        stat = path.stat()
        cached = cache.get(path.name)
        digest = cached[2] if cached and cached[:2] == [stat.st_size, stat.st_mtime_ns] else sha256_of(path)
        seen[path.name] = [stat.st_size, stat.st_mtime_ns, digest]
        combined.update(f"{path.name}\0{digest}\n".encode())
    return combined.hexdigest(), seen
