"""Where things live in the data lake, and the guards that keep names inside it.

Every path the platform writes is derived here from a lake root and a validated name, so a dataset
called ``../etc`` or a symlink in the landing folder cannot make a run read or write elsewhere.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

LAKE_ENV = "CPVAE_LAKE"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


class UnsafePathError(ValueError):
    """A dataset or file name that would leave the folder it belongs to."""


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


def lake_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The lake root: explicit argument, else ``$CPVAE_LAKE``, else ``<repo>/data_lake``.

    A URL (``s3://bucket/lake``, ``gs://...``, ``memory://...``) gives a ``UPath`` on that fsspec
    filesystem (the storage layer in ``cpvae_assets.lake`` handles it); ``file://`` and plain paths
    give a resolved local ``Path``."""
    if root is None:
        root = os.environ.get(LAKE_ENV) or project_root() / "data_lake"
    if isinstance(root, str) and _URL.match(root):
        if not root.startswith("file://"):
            from upath import UPath

            return UPath(root)
        root = root.removeprefix("file://")
    return Path(root).expanduser().resolve()


def check_name(name: str, what: str = "dataset name") -> str:
    """Refuse names that are not a single plain path component (``..``, ``/``, absolute, empty)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:  # fullmatch: no trailing newline
        raise UnsafePathError(
            f"invalid {what} {name!r}: use letters, digits, '_', '-', '.' only "
            "(no path separators, no '..', at most 128 characters)"
        )
    return name


def inside(base: Path, candidate: Path) -> Path:
    """Resolve ``candidate`` (following symlinks) and refuse it unless it lies under ``base``."""
    base = base.resolve()
    resolved = candidate.resolve()
    if resolved != base and base not in resolved.parents:
        raise UnsafePathError(f"{candidate} resolves to {resolved}, outside {base}")
    return resolved


def landing_dir(lake: Path, dataset: str) -> Path:
    return lake / "landing" / check_name(dataset)


def partition_dir(lake: Path, asset: str, dataset: str, model_type: str | None = None) -> Path:
    """Hive-style folder of one partition: ``<lake>/<asset>/dataset=<d>[/model_type=<m>]``."""
    path = lake / check_name(asset, "asset name") / f"dataset={check_name(dataset)}"
    if model_type is not None:
        path = path / f"model_type={check_name(model_type, 'model type')}"
    return path


def catalog_path(lake: Path) -> Path:
    return lake / "cpvae.duckdb"
