"""What is in a landing folder, keyed by content: the sensor's view of new data."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cpvae_assets.fetch import sha256_of
from cpvae_assets.ingest import landing_files
from cpvae_assets.registry import LOCAL_SPEC

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
