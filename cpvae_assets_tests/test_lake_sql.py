"""Atomic Parquet storage, the DuckDB catalog over the lake, and the read-only SQL front door."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from cpvae_assets.cli import main
from cpvae_assets.storage.catalog import discover_tables, rebuild_catalog
from cpvae_assets.storage.paths import DATA_FILE, catalog_path, partition_dir, project_root, table_file
from cpvae_assets.storage.sql import QueryRefused, connect, query
from cpvae_assets.storage.tables import (
    atomic_path,
    column_names,
    read_metadata,
    read_table,
    write_table,
)


def profiles(n: int, features: list[str], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"compound": [f"cpd{i % 3}" for i in range(n)], "moa": ["x"] * n})
    for f in features:
        frame[f] = rng.normal(size=n)
    return frame


def hidden_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


def views(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}


# --------------------------------------------------------------------------- Parquet storage


def test_write_read_round_trip_with_metadata(lake: Path) -> None:
    frame = profiles(7, ["f1", "f2"])
    frame["dose"] = [0.1, 1.0, 10.0, np.nan, 3.0, 1.0, 2.0]
    target = table_file(partition_dir(lake, "raw_profiles", "a"))
    meta = {"rows": 7, "features": ["f1", "f2"], "source": Path("/x/y.csv"), "nested": {"k": 1.5}}

    assert write_table(frame, target, meta) == target

    back = read_table(target)
    pd.testing.assert_frame_equal(back, frame)
    assert read_table(target, columns=["f2"]).columns.tolist() == ["f2"]
    assert read_metadata(target) == {"rows": 7, "features": ["f1", "f2"], "source": "/x/y.csv", "nested": {"k": 1.5}}
    assert column_names(target) == frame.columns.tolist()
    assert hidden_files(target.parent) == []


def test_read_metadata_of_plain_file_is_empty(lake: Path) -> None:
    target = lake / "t" / DATA_FILE
    write_table(profiles(2, ["f"]), target)
    assert read_metadata(target) == {}


def test_failed_write_keeps_previous_file_and_leaves_no_tmp(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = table_file(partition_dir(lake, "raw_profiles", "a"))
    old = profiles(5, ["f1"], seed=1)
    write_table(old, target, {"version": 1})
    seen: list[Path] = []

    def broken_write_table(table, where, **kwargs):
        seen.append(Path(where))
        with open(where, "wb") as handle:
            handle.write(b"PAR1\x00\x01half")  # a torn file
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken_write_table)
    with pytest.raises(OSError, match="disk full"):
        write_table(profiles(9, ["f1", "f9"]), target, {"version": 2})

    # the writer used a hidden file beside the target, never the target itself
    assert len(seen) == 1 and seen[0].parent == target.parent and seen[0].name.startswith(".")
    assert seen[0] != target
    monkeypatch.undo()
    pd.testing.assert_frame_equal(read_table(target), old)
    assert read_metadata(target) == {"version": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == [DATA_FILE]


def test_atomic_path_failure_without_previous_file_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "file.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("boom")
    assert list(target.parent.iterdir()) == []

    with atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert list(target.parent.iterdir()) == [target]


# --------------------------------------------------------------------------- catalog


@pytest.fixture
def populated(lake: Path) -> Path:
    """A lake with two raw datasets of different features, a side table and a two-level partition."""
    write_table(profiles(4, ["f1", "f2"]), table_file(partition_dir(lake, "raw_profiles", "a")))
    write_table(profiles(6, ["f1", "f3"], seed=2), table_file(partition_dir(lake, "raw_profiles", "b")))
    splits = profiles(4, ["f1"])
    splits["split"] = ["train", "train", "val", "test"]
    write_table(splits, table_file(partition_dir(lake, "normalised_splits", "a")))
    write_table(pd.DataFrame({"feature": ["f1"], "mean": [0.0], "std": [1.0]}),
                table_file(partition_dir(lake, "normalised_splits", "a"), "scaler"))
    write_table(pd.DataFrame({"z0": [0.1, 0.2], "z1": [1.0, 2.0]}),
                table_file(partition_dir(lake, "foo", "a", "pca")))
    # things that are not asset tables
    write_table(pd.DataFrame({"x": [1]}), lake / "landing" / "a" / "looks_like.parquet")
    write_table(pd.DataFrame({"x": [1]}), lake / "tmp" / "scratch.parquet")
    write_table(pd.DataFrame({"x": [1]}), lake / ".hidden_asset" / "dataset=a" / DATA_FILE)
    write_table(pd.DataFrame({"x": [1]}), partition_dir(lake, "foo", "a", "pca") / ".data.parquet")
    return lake


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
    # a glob view sees a new partition without a rebuild; a new asset needs one
    assert query(lake, "SELECT count(DISTINCT dataset) AS n FROM raw_profiles")["n"].item() == 3
    with pytest.raises(duckdb.CatalogException):
        query(lake, "SELECT * FROM bar")
    rebuild_catalog(lake)
    assert query(lake, "SELECT k FROM bar")["k"].tolist() == [1]


def test_query_builds_a_missing_catalog(lake: Path) -> None:
    write_table(pd.DataFrame({"v": [1, 2, 3]}), table_file(partition_dir(lake, "things", "d")))
    assert not catalog_path(lake).exists()
    assert query(lake, "SELECT sum(v) AS s FROM things")["s"].item() == 6
    assert catalog_path(lake).exists()


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


# --------------------------------------------------------------------------- concurrency


REBUILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from cpvae_assets.storage.catalog import rebuild_catalog
    rebuild_catalog(Path(sys.argv[1]))
    print("rebuilt")
""")


def rebuild_in_subprocess(lake: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", REBUILD, str(lake)], cwd=project_root(),
                          capture_output=True, text=True, timeout=120)


def test_rebuild_in_another_process_while_a_reader_holds_the_catalog(populated: Path) -> None:
    lake = populated
    rebuild_catalog(lake)
    held = duckdb.connect(str(catalog_path(lake)), read_only=True)
    try:
        assert held.execute("SELECT count(*) FROM raw_profiles").fetchone() == (10,)
        write_table(pd.DataFrame({"w": [7, 8]}), table_file(partition_dir(lake, "new_asset", "a")))

        done = rebuild_in_subprocess(lake)

        assert done.returncode == 0, done.stderr
        assert "rebuilt" in done.stdout and "lock" not in done.stderr.lower()
        assert hidden_files(lake) == [".data.parquet", ".hidden_asset"]  # no stray tmp catalog or WAL
        # the held connection keeps answering from the catalog it opened
        assert held.execute("SELECT count(*) FROM raw_profiles").fetchone() == (10,)
        assert "new_asset" not in views(held)
        # a new connection sees the new view, even while the old one is still held in this process
        assert query(lake, "SELECT sum(w) AS s FROM new_asset")["s"].item() == 15
        # ... and so does a plain read-only connection in another process
        check = subprocess.run(
            [sys.executable, "-c",
             "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
             "print(c.execute('SELECT sum(w) FROM new_asset').fetchone()[0])", str(catalog_path(lake))],
            capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stderr
        assert check.stdout.strip() == "15"
    finally:
        held.close()
    con = duckdb.connect(str(catalog_path(lake)), read_only=True)
    try:
        assert "new_asset" in views(con)
    finally:
        con.close()


def test_query_leaves_a_held_connection_alone(populated: Path) -> None:
    """sql.query must not lock or reconfigure a connection the user opened on the same catalog."""
    lake = populated
    rebuild_catalog(lake)
    held = duckdb.connect(str(catalog_path(lake)), read_only=True)
    try:
        assert query(lake, "SELECT 1 AS one")["one"].item() == 1
        assert held.execute("SELECT current_setting('enable_external_access')").fetchone() == (True,)
        held.execute("SET threads = 2")  # still configurable
    finally:
        held.close()


def test_concurrent_queries_in_one_process(populated: Path) -> None:
    lake = populated
    rebuild_catalog(lake)
    first = connect(lake)
    try:
        # a second connection while the first is open (e.g. a notebook and a thread)
        assert query(lake, "SELECT count(*) AS n FROM foo")["n"].item() == 2
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: query(lake, "SELECT count(*) AS n FROM raw_profiles")["n"].item(),
                                    range(16)))
        assert results == [10] * 16
        assert first.execute("SELECT count(*) FROM raw_profiles").fetchone() == (10,)
    finally:
        first.close()


def test_concurrent_rebuilds_in_many_processes(populated: Path) -> None:
    lake = populated
    procs = [subprocess.Popen([sys.executable, "-c", REBUILD, str(lake)], cwd=project_root(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert hidden_files(lake) == [".data.parquet", ".hidden_asset"]
    assert query(lake, "SELECT count(*) AS n FROM raw_profiles")["n"].item() == 10


# --------------------------------------------------------------------------- CLI


def test_cli_sql_prints_result(lake: Path, capsys) -> None:
    assert main(["--lake", str(lake), "sql", "SELECT 42 AS answer"]) == 0
    out = capsys.readouterr().out
    assert "answer" in out and "42" in out


def test_cli_sql_over_tables(populated: Path, capsys) -> None:
    code = main(["--lake", str(populated), "sql", "SELECT dataset, count(*) AS n FROM raw_profiles GROUP BY ALL ORDER BY ALL"])
    assert code == 0
    lines = capsys.readouterr().out.split("\n")
    assert lines[0].split() == ["dataset", "n"]
    assert lines[1].split() == ["a", "4"] and lines[2].split() == ["b", "6"]


def test_cli_sql_refuses_copy(populated: Path, capsys) -> None:
    code = main(["--lake", str(populated), "sql", f"COPY (SELECT 1) TO '{populated}/x.csv'"])
    assert code == 2
    captured = capsys.readouterr()
    assert "cpvae sql" in captured.err and "SELECT" in captured.err
    assert captured.out == ""
    assert not (populated / "x.csv").exists()


def test_cli_sql_reports_duckdb_errors(populated: Path, capsys) -> None:
    assert main(["--lake", str(populated), "sql", "SELECT * FROM no_such_view"]) == 2
    assert "no_such_view" in capsys.readouterr().err
    assert main(["--lake", str(populated), "sql", "SELECT * FROM read_csv('/etc/passwd')"]) == 2
    assert "cpvae sql" in capsys.readouterr().err
