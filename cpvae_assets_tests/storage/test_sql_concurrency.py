"""The catalog under concurrency: rebuilds in other processes while a reader holds the catalog, a held
connection left alone, concurrent queries in one process, concurrent rebuilds in many."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pandas as pd

from cpvae_assets.storage.catalog import rebuild_catalog
from cpvae_assets.storage.paths import catalog_path, partition_dir, project_root, table_file
from cpvae_assets.storage.sql import connect, query
from cpvae_assets.storage.tables import write_table
from cpvae_assets_tests.support.lake_tables import hidden_files, views

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
