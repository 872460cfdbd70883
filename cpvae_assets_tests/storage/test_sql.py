"""The read-only SQL front door: anything but a read is refused and changes nothing, reads work, files
outside the lake cannot be read, settings cannot be changed from a query."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from cpvae_assets.storage.catalog import rebuild_catalog
from cpvae_assets.storage.lake import Lake
from cpvae_assets.storage.paths import catalog_path
from cpvae_assets.storage.sql import QueryRefused, query
from cpvae_assets.storage.tables import write_table
from cpvae_assets_tests.support.lake_tables import views

# --------------------------------------------------------------------------- read-only SQL


@pytest.mark.parametrize("sql", [
    "COPY (SELECT * FROM raw_profiles) TO '{lake}/out.csv'",
    "COPY raw_profiles TO '{lake}/out.parquet' (FORMAT parquet)",
    "DROP VIEW raw_profiles",
    "ATTACH '{lake}/other.duckdb' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET allowed_directories = ['/']",
    "RESET lock_configuration",
    "CREATE TABLE t AS SELECT 1",
    "CREATE OR REPLACE VIEW raw_profiles AS SELECT 1 AS x",
    "PRAGMA enable_profiling",
    "CALL pragma_version()",
    "DETACH cpvae",
    "EXPORT DATABASE '{lake}/export'",
    "SELECT 1; DROP VIEW raw_profiles",
    "SELECT 1; COPY (SELECT 1) TO '{lake}/out.csv'",
    "EXPLAIN ANALYZE COPY (SELECT 42) TO '{lake}/out.csv'",
    "EXPLAIN (ANALYZE) COPY (SELECT 42) TO '{lake}/out.csv'",
    "explain analyse copy (select 42) to '{lake}/out.csv'",
    "",
    "   ;  ",
])
def test_query_refuses_non_reads(populated: Path, sql: str) -> None:
    lake = populated
    rebuild_catalog(lake)
    before = sorted(p.relative_to(lake) for p in lake.rglob("*"))

    with pytest.raises(QueryRefused):
        query(lake, sql.format(lake=lake))

    assert sorted(p.relative_to(lake) for p in lake.rglob("*")) == before  # nothing written
    con = duckdb.connect(str(catalog_path(lake)), read_only=True)
    try:
        assert views(con) == {"raw_profiles", "normalised_splits", "normalised_splits_scaler", "foo"}
    finally:
        con.close()
    assert query(lake, "SELECT count(*) AS n FROM raw_profiles")["n"].item() == 10


def test_query_allows_reads(populated: Path) -> None:
    lake = populated
    assert query(lake, "SELECT 1 AS a; SELECT 2 AS b").columns.tolist() == ["b"]  # last result
    assert len(query(lake, "EXPLAIN SELECT * FROM raw_profiles")) >= 1
    assert "f1" in query(lake, "DESCRIBE raw_profiles")["column_name"].tolist()
    assert query(lake, "FROM foo SELECT count(*) AS n")["n"].item() == 2
    # reading the lake's own files directly is allowed
    direct = query(lake, f"SELECT count(*) AS n FROM read_parquet('{lake}/raw_profiles/*/data.parquet')")
    assert direct["n"].item() == 10


def test_a_table_without_a_view_gets_one_at_its_first_query(populated: Path) -> None:
    """A table written where no new catalog fitted (a full disk) has no view yet: its first query
    rebuilds the catalog; a name that is no table still fails, with the catalog left as it was."""
    lake = populated
    rebuild_catalog(lake)
    write_table(pd.DataFrame({"run_id": ["r1", "r2"]}), Lake(lake).path("refresh_failures"))  # no catalog rebuild
    before = catalog_path(lake).stat().st_mtime_ns
    with pytest.raises(duckdb.CatalogException, match="nosuchfunc"):  # not a table: the catalog is left alone
        query(lake, "SELECT nosuchfunc(1)")
    assert catalog_path(lake).stat().st_mtime_ns == before
    assert query(lake, "SELECT count(*) AS n FROM refresh_failures")["n"].item() == 2
    before = catalog_path(lake).stat().st_mtime_ns
    with pytest.raises(duckdb.CatalogException, match="refresh_failure"):
        query(lake, "SELECT * FROM refresh_failure")
    assert catalog_path(lake).stat().st_mtime_ns == before


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_parquet('{outside}')",
    "SELECT * FROM glob('/etc/*')",
])
def test_query_cannot_read_outside_the_lake(populated: Path, tmp_path: Path, sql: str) -> None:
    outside = tmp_path / "outside.parquet"
    write_table(pd.DataFrame({"secret": [1]}), outside)
    with pytest.raises(duckdb.PermissionException):
        query(populated, sql.format(outside=outside))


def test_query_settings_cannot_be_changed_from_a_select(populated: Path) -> None:
    with pytest.raises(duckdb.Error):
        query(populated, "SELECT * FROM read_csv('/etc/passwd'); SELECT 1")
    settings = query(populated, "SELECT current_setting('enable_external_access') AS e, "
                                "current_setting('lock_configuration') AS l")
    assert settings.values.tolist() == [[False, True]]
