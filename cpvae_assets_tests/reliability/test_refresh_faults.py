"""The refresh path under faults, on the real daemon path: a fresh DAGSTER_HOME and lake, the webserver
and the daemon on 127.0.0.1, a plate dropped into landing and nothing launched by hand.

- a run worker SIGKILLed in the middle of training is retried and the lake holds whole versions only,
  equal to a clean run with the same seeds;
- the daemon SIGKILLed while runs are queued and in progress, then restarted: every partition is
  materialised exactly once and no run stays in progress;
- a full disk during a Parquet write and during a Keras write: the run fails naming the disk, the old
  version stays readable, nothing half-written is left;
- the same landing content dropped again during a run starts no second ingestion.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from cpvae_assets.defs.jobs import DATASET_ASSETS, MODEL_ASSETS, REPORT_ASSETS
from cpvae_assets.models.store import ModelStore
from cpvae_assets.storage.lake import Lake
from cpvae_assets.storage.sql import query
from cpvae_assets_tests.support.daemon import REAL_CP_PLATE, Daemon, wait_for
from cpvae_assets_tests.support.reliability_support import LEFTOVER, hidden_leftovers

pytestmark = pytest.mark.daemon
DATASET = "lincs_cp_plate"
WELLS = 120  # a fifth of the real plate: enough to train and split, small enough to keep the tests short
TIMEOUT = 600


def expected(model_types: list[str]) -> set[tuple[str, str]]:
    keys = {(a, DATASET) for a in (*DATASET_ASSETS, *REPORT_ASSETS)}
    return keys | {(a, f"{DATASET}|{m}") for a in MODEL_ASSETS for m in model_types}


def materialised(daemon: Daemon, keys: set[tuple[str, str]]) -> Counter:
    return Counter({key: len(daemon.materialisations(*key)) for key in keys})


def refreshed(daemon: Daemon, keys: set[tuple[str, str]]) -> bool:
    return all(materialised(daemon, keys).values()) and daemon.settled()


@pytest.fixture
def daemon(tmp_path: Path, request: pytest.FixtureRequest):
    types = getattr(request, "param", "pca")
    started = Daemon.create(tmp_path / "daemon", CPVAE_REFRESH_MODEL_TYPES=types, CPVAE_REFRESH_PRESET="demo")
    try:
        yield started
    finally:
        started.close()


def test_one_run_per_partition_and_the_same_content_twice_is_one_ingestion(daemon: Daemon) -> None:
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


@pytest.mark.parametrize("daemon", ["beta"], indirect=True)
def test_a_killed_run_worker_is_retried_and_leaves_whole_versions(daemon: Daemon, tmp_path: Path) -> None:
    keys = expected(["beta"])
    daemon.start()
    daemon.drop(DATASET, REAL_CP_PLATE, rows=WELLS)
    run = wait_for(lambda: next(iter(daemon.runs(job_name="models_demo")), None), TIMEOUT, "the models run")

    def training_started() -> bool:
        with daemon.instance() as instance:
            return any(e.step_key == "trained_models" for e in
                       instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START))

    wait_for(training_started, TIMEOUT, "training to start", every=0.5)
    pid = wait_for(lambda: daemon.run_worker_pid(run.run_id), 60, "the run worker's pid")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: refreshed(daemon, keys), TIMEOUT, "the retried refresh")
    failed, retried = daemon.runs(run_ids=[run.run_id])[0], daemon.runs(tags={"dagster/parent_run_id": run.run_id})
    assert failed.status == dg.DagsterRunStatus.FAILURE
    assert len(retried) == 1 and retried[0].is_success and retried[0].tags["dagster/retry_number"] == "1"
    assert set(materialised(daemon, keys).values()) == {1}  # the killed run stored nothing of its partition
    failures = Lake(daemon.lake).table("refresh_failures")
    assert failures["run_id"].tolist() == [run.run_id] and bool(failures["will_retry"].iloc[0])
    assert all(LEFTOVER.search(p) for p in hidden_leftovers(daemon.lake))  # hidden: no view or loader reads them

    # whole versions only: every table equals a clean run of the same plate with the same seeds
    clean = Daemon.create(tmp_path / "clean")
    clean.drop(DATASET, REAL_CP_PLATE, rows=WELLS)
    done = subprocess.run([str(Path(sys.executable).with_name("cpvae")), "run", DATASET, "--model-types", "beta"],
                          env=clean.env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    for asset, partition in sorted(keys):
        if asset in ("report",):  # the report names the runs that wrote its inputs
            continue
        dims = partition.split("|")
        for table in sorted(p.stem for p in Lake(daemon.lake).folder(asset, *dims).glob("*.parquet")):
            ours = Lake(daemon.lake).table(asset, *dims, table=table)
            theirs = Lake(clean.lake).table(asset, *dims, table=table)
            # wall time differs between any two runs; a .keras archive records when it was saved, so its
            # hash does too: the models are compared by their weights below
            timing = [c for c in ours.columns if c in ("seconds", "model_files_sha256")]
            ours, theirs = (_relative(f.drop(columns=timing), lake) for f, lake in ((ours, daemon.lake), (theirs, clean.lake)))
            pd.testing.assert_frame_equal(ours, theirs, obj=f"{asset}/{table}")
    mine, clean_model = (ModelStore(Lake(lake)).load(DATASET, "beta") for lake in (daemon.lake, clean.lake))
    for a, b in ((mine.encoder, clean_model.encoder), (mine.decoder, clean_model.decoder)):
        assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


def _relative(frame: pd.DataFrame, lake: Path) -> pd.DataFrame:
    """Paths stored in a table (the scaler a model was trained with) relative to their lake's root."""
    text = [c for c in frame.columns if frame[c].dtype == object]
    return frame.assign(**{c: frame[c].map(lambda v: v.replace(str(lake), "<lake>") if isinstance(v, str) else v)
                           for c in text})


@pytest.mark.parametrize("daemon", ["pca,beta"], indirect=True)
def test_the_daemon_killed_and_restarted_finishes_every_partition_once(daemon: Daemon) -> None:
    keys = expected(["pca", "beta"])
    daemon.start()
    daemon.drop(DATASET, REAL_CP_PLATE, rows=WELLS)
    wait_for(lambda: len(daemon.runs(job_name="models_demo")) == 2 and daemon.runs(
        job_name="models_demo", statuses=[dg.DagsterRunStatus.STARTED]), TIMEOUT, "a models run in progress, another queued")
    daemon.kill("daemon")
    daemon.start_daemon()
    wait_for(lambda: refreshed(daemon, keys), TIMEOUT, "the refresh after the restart")
    assert set(materialised(daemon, keys).values()) == {1}
    runs = daemon.runs()
    assert all(r.is_finished for r in runs)  # nothing left STARTED: dead_run_workers failed the orphaned run
    assert Counter(r.job_name for r in runs if r.is_success) == Counter(
        {"dataset_inputs": 1, "models_demo": 2, "dataset_report": 1, "summaries": 1})
    for run in runs:  # a run the kill broke was retried by the instance, not planned again
        if run.status == dg.DagsterRunStatus.FAILURE:
            assert daemon.runs(tags={"dagster/parent_run_id": run.run_id}), (run.job_name, daemon.failures())


def test_a_full_disk_fails_the_run_naming_it_and_keeps_the_old_version(daemon: Daemon, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test mounts a small tmpfs as the lake: run it as root (CI does)", pytrace=False)
    lake = daemon.lake
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(lake)], check=True)
    try:
        keys = expected(["pca"])
        daemon.start()
        daemon.drop(DATASET, REAL_CP_PLATE, rows=WELLS)
        wait_for(lambda: refreshed(daemon, keys), TIMEOUT, "the first refresh")
        before = query(lake, "SELECT count(*) AS n FROM raw_profiles")["n"].item()
        # new content, written (hidden) before the disk fills and renamed after: landing lives in the lake
        staged = daemon.drop(DATASET, REAL_CP_PLATE, rows=WELLS + 40, name=".plate_v2.csv.staged")
        free = os.statvfs(lake)
        filler = lake / "filler"
        with open(filler, "wb") as handle:  # leave a few kilobytes: less than a plate's Parquet file
            handle.write(b"\0" * max(0, free.f_bavail * free.f_frsize - 16_384))
        os.replace(staged, staged.with_name("plate.csv"))
        failed = wait_for(lambda: daemon.runs(job_name="dataset_inputs", statuses=[dg.DagsterRunStatus.FAILURE]),
                          TIMEOUT, "the ingestion to fail")
        wait_for(daemon.settled, TIMEOUT, "the runs to end")
        with daemon.instance() as instance:
            errors = " ".join(e.message or "" for e in instance.all_logs(failed[0].run_id)
                              if e.dagster_event and e.dagster_event.is_step_failure)
            errors += " ".join(message for e in instance.all_logs(failed[0].run_id)
                               if e.dagster_event and e.dagster_event.is_step_failure
                               for message in _messages(e.dagster_event.step_failure_data.error))
        assert f"the disk holding {lake}" in errors and "previous version is kept" in errors, errors[:2000]
        assert query(lake, "SELECT count(*) AS n FROM raw_profiles")["n"].item() == before  # old version, whole
        assert not [p for p in hidden_leftovers(lake) if not p.startswith("landing")]
        assert len(daemon.runs(job_name="dataset_inputs")) == 2  # the first refresh and the failed one
        assert not daemon.runs(tags={"dagster/parent_run_id": failed[0].run_id})  # a failed step is not retried
    finally:
        daemon.close()
        subprocess.run(["umount", "-l", str(lake)], check=False)


def _messages(error) -> list[str]:
    """The error and its causes: a write that fails in the IO manager is wrapped by Dagster's own error."""
    messages = []
    while error is not None:
        messages.append(str(error.message))
        error = error.cause
    return messages
