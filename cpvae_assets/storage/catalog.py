"""The read-only DuckDB catalog over the lake: one view per asset table over a glob of its Parquet
files. It is rebuilt into a new file that is renamed over the old one, so no process holds a
DuckDB write lock while readers and runs go on (views over globs see new partitions by themselves).
The catalog is local only: on object storage, query the Parquet files with DuckDB's httpfs.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from cpvae_assets.storage.paths import DATA_TABLE, NOT_ASSETS, TABLE_SUFFIX, catalog_path, check_name, is_remote


def discover_tables(lake: Path) -> dict[str, str]:
    """Map view name -> glob of the Parquet files that back it (one view per asset table)."""
    views: dict[str, str] = {}
    if not lake.exists():
        return views
    for asset_dir in sorted(p for p in lake.iterdir() if p.is_dir()):
        if asset_dir.name in NOT_ASSETS or asset_dir.name.startswith("."):
            continue
        for file in sorted(asset_dir.rglob(f"*{TABLE_SUFFIX}")):
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
