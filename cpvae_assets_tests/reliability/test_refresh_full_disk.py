"""The refresh path on the real daemon path (a fresh DAGSTER_HOME and lake, the webserver and the daemon
on 127.0.0.1, nothing launched by hand), with its landing folder and then its disk misbehaving:

- the same landing content dropped again during the plan starts no second ingestion and no second run
  of any partition;
- then new content on a full disk during a Parquet write: the run fails naming the disk, the old
  version stays readable in SQL, the failure has its line, and nothing half-written is left (a full
  disk during a Keras write: test_disk_full.py). The lake is a 24 MB tmpfs, so the test runs as root (CI does).
"""

from __future__ import annotations

import os
from collections import Counter

import dagster as dg
import pytest

from cpvae_assets.storage.lake import Lake
from cpvae_assets.storage.sql import query
from cpvae_assets_tests.support.daemon import PLAN_DATASET as DATASET
from cpvae_assets_tests.support.daemon import REAL_CP_PLATE, TIMEOUT, WELLS, Daemon, expected, materialised, refreshed, wait_for
from cpvae_assets_tests.support.reliability_support import fill_disk, hidden_leftovers, tmpfs

pytestmark = pytest.mark.daemon


def test_the_same_content_twice_is_one_ingestion_and_a_full_disk_keeps_the_old_version(daemon: Daemon) -> None:
    """(d) the same landing content dropped again during the plan: one run per partition, one ingestion;
    (c) then new content on a full disk: the run fails naming the disk, the old version stays readable."""
    lake = daemon.lake
    with tmpfs(lake, "24m"):
        try:
            keys = expected(["pca"])
            daemon.start()
            plate = daemon.drop(DATASET, REAL_CP_PLATE, rows=WELLS)
            models = wait_for(lambda: daemon.runs(job_name="models_demo"), TIMEOUT, "the models run")
            os.utime(plate)  # the same content again, touched while the plan runs: nothing new to ingest
            daemon.drop(DATASET, plate, name=plate.name)
            wait_for(lambda: refreshed(daemon, keys), TIMEOUT, "the refresh of the plate")
            counts = materialised(daemon, keys)
            assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}
            jobs = Counter(r.job_name for r in daemon.runs())
            assert jobs == Counter({"dataset_inputs": 1, "models_demo": 1, "dataset_report": 1, "summaries": 1})
            assert all(r.is_success for r in daemon.runs()), daemon.failures()
            assert models[0].tags["cpvae/refresh"].startswith(DATASET)

            before = query(lake, "SELECT count(*) AS n FROM raw_profiles")["n"].item()
            # new content, written (hidden) before the disk fills and renamed after: landing lives in the lake
            staged = daemon.drop(DATASET, REAL_CP_PLATE, rows=WELLS + 40, name=".plate_v2.csv.staged")
            fill_disk(lake)  # leave a few kilobytes: less than a plate's Parquet file
            os.replace(staged, staged.with_name("plate.csv"))
            failed = wait_for(lambda: daemon.runs(job_name="dataset_inputs", statuses=[dg.DagsterRunStatus.FAILURE]),
                              TIMEOUT, "the ingestion to fail")
            wait_for(daemon.settled, TIMEOUT, "the runs to end")
            with daemon.instance() as instance:
                errors = " ".join(message for e in instance.all_logs(failed[0].run_id)
                                  if e.dagster_event and e.dagster_event.is_step_failure
                                  for message in [e.message or "", *_messages(e.dagster_event.step_failure_data.error)])
            assert f"the disk holding {lake}" in errors and "previous version is kept" in errors, errors[:2000]
            assert query(lake, "SELECT count(*) AS n FROM raw_profiles")["n"].item() == before  # old version, whole
            # the failure's line, on the same full disk (the sensor's catalog rebuild fails there and is left
            # for later); the sensor reports it after its try, so its temporary catalog is gone by then
            wait_for(lambda: _recorded(daemon, failed[0].run_id), TIMEOUT, "the failure to be recorded")
            assert list(Lake(lake).table("refresh_failures")["run_id"]) == [failed[0].run_id]
            assert not [p for p in hidden_leftovers(lake) if not p.startswith("landing")]
            assert len(daemon.runs(job_name="dataset_inputs")) == 2  # the first refresh and the failed one
            assert not daemon.runs(tags={"dagster/parent_run_id": failed[0].run_id})  # a failed step is not retried
        finally:
            daemon.close()


def _recorded(daemon: Daemon, run_id: str) -> bool:
    """The record_failures sensor reports its asset after it wrote the row and tried the catalog."""
    with daemon.instance() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("refresh_failures"))
    return bool(event and event.asset_materialization.metadata["run_id"].value == run_id)


def _messages(error) -> list[str]:
    """The error and its causes: a write that fails in the IO manager is wrapped by Dagster's own error."""
    messages = []
    while error is not None:
        messages.append(str(error.message))
        error = error.cause
    return messages
