"""SHA-256 of a file, local or on an fsspec filesystem: the one content hash of the platform (landing
content, stored tables, model files, downloads)."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:  # Path.open: a UPath on object storage reads through fsspec
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()
