"""The refresh_failures table: one line per failed run, even when the failure is reported twice, and
even when the disk has no room left for a new SQL catalog."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import pytest

from cpvae_assets.defs.failures import append_failure, failure_row, record_failure
from cpvae_assets.storage.catalog import rebuild_catalog
from cpvae_assets.storage.lake import Lake
from cpvae_assets.storage.sql import query
from cpvae_assets_tests.support.reliability_support import fill_disk, tmpfs


def test_a_failure_reported_twice_is_one_line(tmp_path) -> None:
    lake = Lake(tmp_path)
    first, second = (dg.DagsterRun(job_name="models_demo", run_id=i, tags={"dagster/partition": "plate|beta"})
                     for i in ("run-1", "run-2"))
    now = dt.datetime.now(dt.UTC)
    assert append_failure(lake, failure_row(first, "killed", now, True)) == 1
    assert append_failure(lake, failure_row(first, "killed", now, True)) == 1  # the sensor delivered it again
    assert append_failure(lake, failure_row(second, "killed", now, False)) == 2
    table = lake.table("refresh_failures")
    assert list(table["run_id"]) == ["run-1", "run-2"] and list(table["dataset"]) == ["plate", "plate"]


def test_a_failure_is_recorded_when_the_disk_has_no_room_for_a_new_catalog(tmp_path) -> None:
    """A full disk fails the run and leaves room for the line (kilobytes), not for a new catalog file
    (hundreds of kilobytes): the line is kept, and its view comes at its first query. The lake is a
    small tmpfs, so the test runs as root (CI does)."""
    with tmpfs(tmp_path / "lake", "2m") as root:
        lake = Lake(root)
        rebuild_catalog(root)  # a catalog without the table, as a lake has before its first failure
        run = dg.DagsterRun(job_name="dataset_inputs", run_id="run-1", tags={"dagster/partition": "plate"})
        filler = fill_disk(root)
        rows, problem = record_failure(lake, failure_row(run, "disk full", dt.datetime.now(dt.UTC), False))
        assert rows == 1 and "No space left on device" in problem, problem
        with pytest.raises(duckdb.CatalogException, match="refresh_failures"):  # no room for its view yet
            query(root, "SELECT run_id FROM refresh_failures")
        assert list(lake.table("refresh_failures")["run_id"]) == ["run-1"]
        assert not [p for p in root.rglob(".*")]  # the catalog's temporary file is gone
        filler.unlink()  # space freed: the view appears at the table's first query
        assert list(query(root, "SELECT run_id FROM refresh_failures")["run_id"]) == ["run-1"]
