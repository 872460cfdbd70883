"""The DuckDB catalog over the lake: table discovery, one view per table (union by name over
partitions), rebuilds that pick up new tables, and a catalog built on first query. The lake is the
``populated`` fixture (top-level conftest)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from cpvae_assets.storage.catalog import catalog_after_write, discover_tables, rebuild_catalog
from cpvae_assets.storage.paths import DATA_FILE, catalog_path, partition_dir, table_file
from cpvae_assets.storage.sql import query
from cpvae_assets.storage.tables import write_table
from cpvae_assets_tests.support.lake_tables import hidden_files, profiles, views


def test_discover_tables(populated: Path) -> None:
    lake = populated
    found = discover_tables(lake)
    assert set(found) == {"raw_profiles", "normalised_splits", "normalised_splits_scaler", "foo"}
    assert found["raw_profiles"] == str(lake / "raw_profiles" / "*" / DATA_FILE)
    assert found["normalised_splits_scaler"] == str(lake / "normalised_splits" / "*" / "scaler.parquet")
    assert found["foo"] == str(lake / "foo" / "*" / "*" / DATA_FILE)
    assert discover_tables(lake / "does_not_exist") == {}


def test_rebuild_catalog_views_and_union_by_name(populated: Path) -> None:
    lake = populated
    path = rebuild_catalog(lake)
    assert path == catalog_path(lake)
    assert hidden_files(lake) == [".data.parquet", ".hidden_asset"]  # only the fixture's own hidden things

    con = duckdb.connect(str(path), read_only=True)
    try:
        assert views(con) == {"raw_profiles", "normalised_splits", "normalised_splits_scaler", "foo"}
    finally:
        con.close()

    counts = query(lake, "SELECT dataset, count(*) AS n FROM raw_profiles GROUP BY ALL ORDER BY ALL")
    assert counts.values.tolist() == [["a", 4], ["b", 6]]

    raw = query(lake, "SELECT * FROM raw_profiles")
    assert {"f1", "f2", "f3", "dataset", "compound"} <= set(raw.columns)
    assert raw.loc[raw.dataset == "a", "f3"].isna().all()
    assert raw.loc[raw.dataset == "b", "f2"].isna().all()
    assert raw.loc[raw.dataset == "b", "f3"].notna().all()

    foo = query(lake, "SELECT dataset, model_type, count(*) AS n FROM foo GROUP BY ALL")
    assert foo.values.tolist() == [["a", "pca", 2]]

    scaler = query(lake, "SELECT * FROM normalised_splits_scaler")
    assert scaler["feature"].tolist() == ["f1"] and scaler["dataset"].tolist() == ["a"]
    splits = query(lake, "SELECT split, count(*) AS n FROM normalised_splits GROUP BY ALL ORDER BY ALL")
    assert dict(splits.values.tolist()) == {"test": 1, "train": 2, "val": 1}


def test_catalog_rebuild_picks_up_new_tables_and_partitions(populated: Path) -> None:
    lake = populated
    rebuild_catalog(lake)
    write_table(profiles(3, ["f4"]), table_file(partition_dir(lake, "raw_profiles", "c")))
    write_table(pd.DataFrame({"k": [1]}), table_file(partition_dir(lake, "bar", "a")))
    # a glob view sees a new partition without a rebuild; a new asset needs one (its first query does it)
    before = catalog_path(lake).stat().st_mtime_ns
    assert query(lake, "SELECT count(DISTINCT dataset) AS n FROM raw_profiles")["n"].item() == 3
    assert catalog_path(lake).stat().st_mtime_ns == before
    assert query(lake, "SELECT k FROM bar")["k"].tolist() == [1]
    assert catalog_path(lake).stat().st_mtime_ns != before


def test_query_builds_a_missing_catalog(lake: Path) -> None:
    write_table(pd.DataFrame({"v": [1, 2, 3]}), table_file(partition_dir(lake, "things", "d")))
    assert not catalog_path(lake).exists()
    assert query(lake, "SELECT sum(v) AS s FROM things")["s"].item() == 6
    assert catalog_path(lake).exists()


def test_rebuild_is_skipped_while_the_views_are_current(populated: Path) -> None:
    """A write that adds no table leaves the catalog file alone; a new table, a moved lake or force
    build it again."""
    lake = populated
    path = rebuild_catalog(lake)
    built = path.stat().st_ino
    write_table(profiles(2, ["f9"]), table_file(partition_dir(lake, "raw_profiles", "z")))  # a partition
    assert rebuild_catalog(lake) == path and path.stat().st_ino == built
    assert query(lake, "SELECT count(*) AS n FROM raw_profiles WHERE dataset = 'z'")["n"].item() == 2
    assert rebuild_catalog(lake, force=True) == path and path.stat().st_ino != built
    built = path.stat().st_ino
    write_table(pd.DataFrame({"k": [1]}), table_file(partition_dir(lake, "bar", "a")))  # a table
    rebuild_catalog(lake)
    assert path.stat().st_ino != built and query(lake, "SELECT k FROM bar")["k"].tolist() == [1]

    moved = lake.with_name(lake.name + "_moved")
    lake.rename(moved)  # views over the old path's globs would read nothing
    rebuild_catalog(moved)
    assert query(moved, "SELECT count(*) AS n FROM bar")["n"].item() == 1

    catalog_path(moved).write_bytes(b"not a duckdb file")
    rebuild_catalog(moved)
    assert query(moved, "SELECT k FROM bar")["k"].tolist() == [1]


def test_a_write_of_known_tables_neither_walks_the_lake_nor_rebuilds(populated: Path, monkeypatch) -> None:
    """After a write, the catalog is rebuilt only for a table without a view; a catalog another
    process replaced, or one that is gone, is read again rather than trusted from memory."""
    import cpvae_assets.storage.catalog as catalog

    lake = populated
    path = rebuild_catalog(lake)
    walks: list[Path] = []
    monkeypatch.setattr(catalog, "discover_tables", lambda root: walks.append(root) or discover_tables(root))
    built = path.stat().st_ino
    for dataset in ("y", "z"):  # new partitions of a known table
        written = write_table(profiles(2, ["f9"]), table_file(partition_dir(lake, "raw_profiles", dataset)))
        assert catalog_after_write(lake, [written]) == path
    assert walks == [] and path.stat().st_ino == built
    assert query(lake, "SELECT count(*) AS n FROM raw_profiles WHERE dataset = 'z'")["n"].item() == 2

    written = write_table(pd.DataFrame({"k": [1]}), table_file(partition_dir(lake, "bar", "a")))  # a new table
    catalog_after_write(lake, [written])
    assert walks == [lake] and path.stat().st_ino != built
    assert query(lake, "SELECT k FROM bar")["k"].tolist() == [1]

    bar = partition_dir(lake, "bar", "a")
    (bar / DATA_FILE).rename(lake / "bar.parquet.away")
    rebuild_catalog(lake)  # as another process would: a new file, without the view of bar
    (lake / "bar.parquet.away").rename(bar / DATA_FILE)
    walks.clear()
    catalog_after_write(lake, [written])
    assert walks == [lake] and query(lake, "SELECT k FROM bar")["k"].tolist() == [1]
    path.unlink()
    catalog_after_write(lake, [written])
    assert walks == [lake, lake] and query(lake, "SELECT k FROM bar")["k"].tolist() == [1]
