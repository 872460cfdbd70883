"""Where things live in the data lake, and the guards that keep names inside it.

Every path the platform writes is derived here from a lake root and a validated name, so a dataset
called ``../etc`` or a symlink in the landing folder cannot make a run read or write elsewhere.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

LAKE_ENV = "CPVAE_LAKE"
# files shipped with the package: real plates, the Repurposing Hub tables, the LINCS manifest
PACKAGE_DATA = Path(__file__).resolve().parent.parent / "data"
# folders under the lake root that hold no asset tables (landing files, the Dagster instance, run logs, scratch)
NOT_ASSETS = frozenset({"landing", "dagster_home", "logs", "tmp"})
# the file of an asset partition that downstream assets load; side tables (scaler, ...) sit beside it
DATA_FILE = "data.parquet"
DATA_TABLE, TABLE_SUFFIX = Path(DATA_FILE).stem, Path(DATA_FILE).suffix
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


class UnsafePathError(ValueError):
    """A dataset or file name that would leave the folder it belongs to."""


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent.parent


def lake_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The lake root: explicit argument, else ``$CPVAE_LAKE``, else ``<repo>/data_lake``.

    A URL (``s3://bucket/lake``, ``gs://...``, ``memory://...``) gives a ``UPath`` on that fsspec
    filesystem (the storage layer in ``cpvae_assets.storage`` handles it); ``file://`` and plain paths
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


def table_file(folder: Path, table: str = DATA_TABLE) -> Path:
    """The Parquet file of one table of a partition folder (``data`` unless a side table is named)."""
    return folder / f"{check_name(table, 'table name')}{TABLE_SUFFIX}"


FIGURE_SUFFIX = ".png"


def figure_file(folder: Path, name: str) -> Path:
    """The PNG of one figure of a partition folder, drawn by the asset that stored its tables."""
    return folder / f"{check_name(name, 'figure name')}{FIGURE_SUFFIX}"


def catalog_path(lake: Path) -> Path:
    return lake / "cpvae.duckdb"


def is_remote(path: object) -> bool:
    """True for a path on a non-local fsspec filesystem (a ``UPath`` with an ``s3``, ``gs``,
    ``memory``... protocol); plain ``pathlib`` paths and ``file://`` are local. Imports nothing: no
    UPath exists before ``lake_root`` has imported upath for a URL."""
    upath = sys.modules.get("upath")
    return upath is not None and isinstance(path, upath.UPath) and path.protocol not in ("", "file", "local")
