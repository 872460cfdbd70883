"""Resources: where the lake is, and the remote LINCS source. Kept apart from the assets."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from cpvae_assets.ingestion.fetch import ManifestEntry, fetch_file, read_manifest
from cpvae_assets.ingestion.registry import DatasetSpec
from cpvae_assets.storage.hashing import sha256_of
from cpvae_assets.storage.lake import Lake
from cpvae_assets.storage.paths import PACKAGE_DATA

DEFAULT_MANIFEST = PACKAGE_DATA / "remote_manifest.tsv"


class LakeResource(dg.ConfigurableResource):
    """The data lake (``Lake``: tables, landing folders, catalog); an empty root means ``$CPVAE_LAKE``
    or ``<repo>/data_lake``. Assets take it as ``lake: dg.ResourceParam[Lake]``."""

    root: str = ""

    def create_resource(self, context: dg.InitResourceContext) -> Lake:
        return Lake.at(self.root or None)


class LincsRemoteResource(dg.ConfigurableResource):
    """The public LINCS files, as listed (path, sha256, size, URL) in a manifest."""

    manifest: str = ""
    progress: bool = False
    timeout_seconds: float = 60.0

    @property
    def manifest_path(self) -> Path:
        return Path(self.manifest) if self.manifest else DEFAULT_MANIFEST

    def entries(self, spec: DatasetSpec) -> list[ManifestEntry]:
        known = {e.path: e for e in read_manifest(self.manifest_path)}
        missing = [p for p in spec.remote_files if p not in known]
        if missing:
            raise ValueError(f"{self.manifest_path}: dataset {spec.name!r} lists files not in the manifest: {missing}")
        return [known[p] for p in spec.remote_files]

    def status(self, spec: DatasetSpec, landing: Path) -> list[dict]:
        """Which of the dataset's remote files are present and verified (no network)."""
        rows = []
        for entry in self.entries(spec):
            target = landing / entry.file_name
            ok = target.exists() and target.stat().st_size == entry.size_bytes and sha256_of(target) == entry.sha256
            rows.append({"dataset": spec.name, "path": entry.path, "size_bytes": entry.size_bytes,
                         "sha256": entry.sha256, "status": "verified" if ok else "absent"})
        return rows

    def fetch(self, spec: DatasetSpec, landing: Path) -> list[Path]:
        return [fetch_file(e, landing, self.progress, self.timeout_seconds) for e in self.entries(spec)]
