"""The refresh_failures table: one line per failed run, even when the failure is reported twice."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from cpvae_assets.defs.failures import append_failure, failure_row
from cpvae_assets.storage.lake import Lake


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
