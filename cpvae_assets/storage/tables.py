"""Atomic Parquet tables: written hidden beside their target and renamed over it, so a reader sees
the old or the new file, never half of one, and a crash leaves the old version whole.

The lake root may be a URL on an fsspec filesystem (``s3://``, ``gs://``, ``memory://``; see
``cpvae_assets.storage.paths.lake_root``): paths are then ``UPath``s, writers still get a local
temporary file, which is uploaded to a hidden temporary key and moved onto the target (a single PUT
or copy: atomic on object stores), and readers read through fsspec.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cpvae_assets.storage.paths import DATA_TABLE, FIGURE_SUFFIX, figure_file, is_remote, table_file


class DiskFullError(OSError):
    """The disk holding the lake has no room for a write; the previous version of the file is kept."""


def _full(exc: BaseException) -> bool:
    """Whether an error is the disk being full (errno ENOSPC / EDQUOT, or HDF5's text of it)."""
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(exc)


def _disk_full(target: Path, exc: BaseException) -> DiskFullError:
    mount = Path(os.path.realpath(target.parent))
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    usage = shutil.disk_usage(mount)
    return DiskFullError(errno.ENOSPC, f"the disk holding {target.parent} (mounted at {mount}, "
                         f"{usage.total / 1e6:,.1f} MB, {usage.free / 1e6:,.1f} MB free) is full: {target.name} was "
                         "not written and its previous version is kept; free space and run again")


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` only if the block succeeds.

    The temporary name is hidden (leading dot: no glob or loader picks it up) and keeps the target's
    suffix, for writers that insist on one (Keras ``.keras``, AnnData ``.h5ad``).
    """
    if is_remote(target):
        with _remote_atomic_path(target) as local:
            yield local
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}{target.suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except Exception as exc:
        if _full(exc) and not isinstance(exc, DiskFullError):
            raise _disk_full(target, exc) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_table(
    frame: pd.DataFrame, target: Path, metadata: Mapping[str, object] | None = None
) -> Path:
    """Write ``frame`` as Parquet at ``target`` atomically; ``metadata`` goes into the file as JSON."""
    if len(frame.columns) == 0:  # DuckDB cannot read such a file: its SQL view would break the catalog
        raise ValueError(f"{target}: a table needs at least one column (an empty result still names its columns)")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged[b"cpvae"] = json.dumps(metadata, default=str).encode()
        table = table.replace_schema_metadata(merged)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return target


def read_table(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    if is_remote(path):
        return pq.read_table(path.path, columns=columns, filesystem=path.fs).to_pandas()
    return pq.read_table(path, columns=columns).to_pandas()


def read_metadata(path: Path) -> dict[str, object]:
    schema = pq.read_schema(path.path, filesystem=path.fs) if is_remote(path) else pq.read_schema(path)
    raw = (schema.metadata or {}).get(b"cpvae")
    return json.loads(raw) if raw else {}


def column_names(path: Path) -> list[str]:
    return list((pq.read_schema(path.path, filesystem=path.fs) if is_remote(path) else pq.read_schema(path)).names)


def replace(source: Path, target: Path) -> None:
    """``os.replace`` for local paths; on an fsspec filesystem a move (copy + delete on object
    stores, where the copy makes the target appear whole)."""
    if is_remote(target):
        target.fs.mv(source.path, target.path)
    else:
        os.replace(source, target)


@contextmanager
def _remote_atomic_path(target: Path) -> Iterator[Path]:
    """A local temporary file for the writer; on success uploaded to a hidden key beside ``target``
    and moved onto it. A failed block or upload leaves ``target`` as it was and no temporary key."""
    fs = target.fs
    handle, name = tempfile.mkstemp(prefix=".cpvae-", suffix=target.suffix)
    os.close(handle)
    local = Path(name)
    try:
        yield local
        fs.makedirs(target.parent.path, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}{target.suffix}")
        try:
            fs.put_file(str(local), tmp.path)
            fs.mv(tmp.path, target.path)
        finally:
            if fs.exists(tmp.path):
                fs.rm_file(tmp.path)
    finally:
        local.unlink(missing_ok=True)


def commit_tables(folder: Path, tables: dict[str, pd.DataFrame], meta: dict[str, object],
                  figures: Mapping[str, bytes] | None = None) -> list[Path]:
    """Write every table (and figure, ``<name>.png``) to a hidden file, then rename them into place
    (figures and side tables first, ``data`` last): a crash while writing leaves the previous version
    of every file in place. A figure the partition no longer has is removed after the renames."""
    token = uuid.uuid4().hex
    staged: list[tuple[Path, Path]] = []
    figures = dict(figures or {})
    try:
        for name, png in figures.items():
            target = figure_file(folder, name)
            hidden = folder / f".{target.name}.staged-{token}"
            with atomic_path(hidden) as tmp:  # fsync'd, and a full disk named, as a table's write
                tmp.write_bytes(png)
            staged.append((hidden, target))
        for name in sorted(tables, key=lambda n: n == DATA_TABLE):
            target = table_file(folder, name)
            staged.append((write_table(tables[name], folder / f".{target.name}.staged-{token}", meta), target))
        for tmp, target in staged:
            replace(tmp, target)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    kept = {figure_file(folder, name).name for name in figures}
    for old in folder.glob(f"*{FIGURE_SUFFIX}"):
        if old.name not in kept and not old.name.startswith("."):
            old.unlink(missing_ok=True)
    return [target for _, target in staged]
