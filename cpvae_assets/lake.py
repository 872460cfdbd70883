"""Atomic Parquet storage and the read-only DuckDB catalog over it.

Writers never touch a file a reader may have open: a table is written to a hidden temporary file in
its partition folder and renamed over the old one, and the catalog (views over globs) is rebuilt into
a new file that is renamed over the old catalog. Readers therefore see the old or the new state,
never a half-written one, and no process holds a DuckDB write lock while runs go on.

The lake root may also be a URL on an fsspec filesystem (``s3://``, ``gs://``, ``memory://``; see
``cpvae_assets.paths.lake_root``): paths are then ``UPath``s, writers still get a local temporary
file, which is uploaded to a hidden temporary key and moved onto the target (a single PUT or copy:
atomic on object stores), and readers read through fsspec. The DuckDB catalog is local only: on
object storage, query the Parquet files with DuckDB's httpfs (``read_parquet('s3://...')``).
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cpvae_assets.paths import catalog_path, check_name

DATA_TABLE = "data"
# folders under the lake root that hold no asset tables
_NOT_ASSETS = {"landing", "dagster_home", "tmp"}


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
        _test_pause(target, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


PAUSE_ENV, PAUSE_MARKER_ENV = "CPVAE_TEST_PAUSE_BEFORE_RENAME", "CPVAE_TEST_PAUSE_MARKER"


def _test_pause(target: Path, tmp: Path) -> None:
    """Test hook: the crash tests SIGKILL a writer at this point, deterministically. When
    ``$CPVAE_TEST_PAUSE_BEFORE_RENAME`` is a substring of ``target``, write the temporary file's
    path to ``$CPVAE_TEST_PAUSE_MARKER`` and sleep (at most 5 min) before the rename."""
    pattern = os.environ.get(PAUSE_ENV)
    if not pattern or pattern not in str(target):
        return
    import time

    Path(os.environ[PAUSE_MARKER_ENV]).write_text(str(tmp))
    time.sleep(300)


def write_table(
    frame: pd.DataFrame, target: Path, metadata: Mapping[str, object] | None = None
) -> Path:
    """Write ``frame`` as Parquet at ``target`` atomically; ``metadata`` goes into the file as JSON."""
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


def discover_tables(lake: Path) -> dict[str, str]:
    """Map view name -> glob of the Parquet files that back it (one view per asset table)."""
    views: dict[str, str] = {}
    if not lake.exists():
        return views
    for asset_dir in sorted(p for p in lake.iterdir() if p.is_dir()):
        if asset_dir.name in _NOT_ASSETS or asset_dir.name.startswith("."):
            continue
        for file in sorted(asset_dir.rglob("*.parquet")):
            if file.name.startswith("."):
                continue
            depth = len(file.relative_to(asset_dir).parts) - 1
            table = file.stem
            view = asset_dir.name if table == DATA_TABLE else f"{asset_dir.name}_{table}"
            views.setdefault(view, str(asset_dir / "/".join(["*"] * depth) / file.name))
    return views


def rebuild_catalog(lake: Path) -> Path | None:
    """Build a new catalog file with one view per table and rename it over the old one (a local lake
    only: None for a lake on object storage, which DuckDB's httpfs queries directly)."""
    import duckdb

    if is_remote(lake):
        return None
    target = catalog_path(lake)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
    try:
        con = duckdb.connect(str(tmp))
        try:
            for view, glob in discover_tables(lake).items():
                check_name(view, "view name")
                escaped = glob.replace("'", "''")
                con.execute(
                    f'CREATE VIEW "{view}" AS SELECT * FROM read_parquet('
                    f"'{escaped}', hive_partitioning = true, union_by_name = true)"
                )
        finally:
            con.close()
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
    return target


# ------------------------------------------------------------------ a lake root on an fsspec filesystem


def is_remote(path: object) -> bool:
    """True for a path on a non-local fsspec filesystem (a ``UPath`` with an ``s3``, ``gs``,
    ``memory``... protocol); plain ``pathlib`` paths and ``file://`` are local."""
    from upath import UPath

    return isinstance(path, UPath) and path.protocol not in ("", "file", "local")


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


@contextmanager
def local_copy(path: Path) -> Iterator[Path]:
    """``path`` itself when it is local; else a temporary local copy of it, removed afterwards (for
    readers that need a file name: ``keras.models.load_model``, ``np.load``, h5py)."""
    if not is_remote(path):
        yield path
        return
    handle, name = tempfile.mkstemp(prefix=".cpvae-", suffix=path.suffix)
    os.close(handle)
    try:
        path.fs.get_file(path.path, name)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)
