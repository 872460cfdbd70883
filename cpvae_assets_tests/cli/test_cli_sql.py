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
