"""Atomic Parquet storage and the read-only DuckDB catalog over it.

Writers never touch a file a reader may have open: a table is written to a hidden temporary file in
its partition folder and renamed over the old one, and the catalog (views over globs) is rebuilt into
a new file that is renamed over the old catalog. Readers therefore see the old or the new state,
never a half-written one, and no process holds a DuckDB write lock while runs go on.
"""

from __future__ import annotations

import json
import os
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
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}{target.suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


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
    return pq.read_table(path, columns=columns).to_pandas()


def read_metadata(path: Path) -> dict[str, object]:
    raw = (pq.read_schema(path).metadata or {}).get(b"cpvae")
    return json.loads(raw) if raw else {}


def column_names(path: Path) -> list[str]:
    return list(pq.read_schema(path).names)


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


def rebuild_catalog(lake: Path) -> Path:
    """Build a new catalog file with one view per table and rename it over the old one."""
    import duckdb

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
