"""``cpvae sql``: prints results, reads the lake's tables (also after a materialisation), refuses
anything but a read and reports DuckDB's errors, with exit code 2."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from cpvae_assets.cli import main
from cpvae_assets.storage.sql import query
from cpvae_assets.storage.tables import read_table
from cpvae_assets_tests.support.dagster_runs import land_plate, materialise, part


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


def test_cli_sql(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cpvae_assets.cli import main

    assert main(["--lake", str(lake), "sql", "SELECT 1 AS one"]) == 0
    assert "one" in capsys.readouterr().out
    assert main(["--lake", str(lake), "sql", "DROP VIEW x"]) == 2


def test_cli_sql_after_materialisation(lake: Path, instance: dg.DagsterInstance,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from cpvae_assets.cli import main

    land_plate(lake)
    assert materialise(lake, instance, ["raw_profiles", "normalised_splits"]).success
    capsys.readouterr()
    assert main(["--lake", str(lake), "sql", "SELECT count(*) AS n FROM raw_profiles"]) == 0
    assert "384" in capsys.readouterr().out
    scaler_rows = query(lake, "SELECT count(*) AS n FROM normalised_splits_scaler")["n"][0]
    assert scaler_rows == len(read_table(part(lake, "normalised_splits", "scaler")))


def test_cli_sql_imports_only_what_a_query_needs(populated: Path) -> None:
    """Start-up is most of a small query's wall time: no pandas (about 2 s), Dagster, TensorFlow or
    DuckDB's Python relational layer on the way (``bench/sql_benchmark.py`` measures the wall time)."""
    import subprocess
    import sys

    from cpvae_assets.storage.catalog import rebuild_catalog

    rebuild_catalog(populated)  # as after any materialisation
    code = ("import sys; from cpvae_assets.cli import main; rc = main(sys.argv[1:]); "
            "print(sorted(m for m in ('pandas', 'dagster', 'tensorflow', 'duckdb', 'pyarrow', 'numpy') "
            "if m in sys.modules)); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, "--lake", str(populated), "sql",
                           "SELECT dataset, count(*) AS n FROM raw_profiles GROUP BY ALL ORDER BY ALL"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["dataset", "n"] and lines[1].split() == ["a", "4"]
    assert lines[-1] == "[]"


def test_cli_sql_formats_nulls_floats_and_long_results(lake: Path, capsys) -> None:
    sql = "SELECT i, CASE WHEN i = 2 THEN NULL ELSE i / 3 END AS third, 'x' || i AS name FROM range(5) t(i)"
    assert main(["--lake", str(lake), "sql", sql, "--max-rows", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["i", "third", "name"]
    assert lines[2].split() == ["1", "0.333333", "x1"] and lines[3].split() == ["2", "NULL", "x2"]
    assert lines[4] == "... 5 rows, the first 3 shown (--max-rows)"
