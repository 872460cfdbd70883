"""The refresh path under faults, on the real daemon path: a fresh DAGSTER_HOME and lake, the webserver
and the daemon on 127.0.0.1, a plate dropped into landing and nothing launched by hand.

- the daemon SIGKILLed while beta trains (with two training slots, pca's run beside it, or already
  done), then restarted, and beta's retry's own worker SIGKILLed in the middle of training: every run
  the kills broke is retried, every partition is materialised exactly once, no run stays in progress,
  and the lake holds whole versions only, equal to a clean run with the same seeds;

The same content twice and a full disk: test_refresh_full_disk.py. One daemon session for both kills:
each session costs minutes of process starts on two cores. The kills land in the middle of a
training step; a kill in the second between a step's write and Dagster's record of its end makes the
retry run that step again (at least once, the same content: README "When things go wrong").
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

from cpvae_assets.defs.failures import worker_alive
from cpvae_assets.defs.jobs import DATASET_ASSETS, MODEL_ASSETS, REPORT_ASSETS
from cpvae_assets.models.store import ModelStore
from cpvae_assets.storage.lake import Lake
from cpvae_assets_tests.support.daemon import PLAN_DATASET as DATASET
from cpvae_assets_tests.support.daemon import REAL_CP_PLATE, TIMEOUT, WELLS, Daemon, expected, materialised, refreshed, wait_for
from cpvae_assets_tests.support.reliability_support import LEFTOVER, hidden_leftovers

pytestmark = pytest.mark.daemon


def _training(daemon: Daemon, run_id: str) -> bool:
    """The run is in ``trained_models`` (started, not ended): a kill now lands in the middle of a step."""
    with daemon.instance() as instance:
        steps = {e.dagster_event.event_type for e in instance.all_logs(run_id) if e.dagster_event
                 and e.step_key == "trained_models"}
    ended = {dg.DagsterEventType.STEP_OUTPUT, dg.DagsterEventType.ASSET_MATERIALIZATION,
             dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    return dg.DagsterEventType.STEP_START in steps and not steps & ended


def _retry_of(daemon: Daemon, run_id: str) -> dg.DagsterRun | None:
    return next(iter(daemon.runs(tags={"dagster/parent_run_id": run_id})), None)


@pytest.mark.parametrize("daemon", ["beta,pca"], indirect=True)
def test_a_killed_daemon_and_a_killed_run_worker_are_retried_and_leave_whole_versions(
        daemon: Daemon, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """(b) the daemon killed with beta training, then restarted; (a) beta's retry's own worker killed while
    the daemon lives. Each broken run is retried, every partition is materialised once, and the lake
    equals a clean run of the same plate with the same seeds."""
    keys = expected(["beta", "pca"])
    clean = Daemon.create(tmp_path / "clean")  # the reference runs beside the daemon: it only waits
    clean.drop(DATASET, REAL_CP_PLATE, rows=WELLS)
    reference = subprocess.Popen([str(Path(sys.executable).with_name("cpvae")), "run", DATASET, "--model-types", "beta", "pca"],
                                 env=clean.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    request.addfinalizer(lambda: reference.poll() is None and reference.kill())  # a failed test leaves no run behind
    daemon.start()
    daemon.drop(DATASET, REAL_CP_PLATE, rows=WELLS)

    # (b) beta training; pca's run trains beside it or has ended (two training slots)
    def beta_training() -> dg.DagsterRun | None:
        beta = daemon.runs(job_name="models_demo", tags={"dagster/partition/model_type": "beta"})
        return beta[0] if beta and _training(daemon, beta[0].run_id) else None

    first = wait_for(beta_training, TIMEOUT, "beta training", every=0.5)
    wait_for(lambda: daemon.run_worker_pid(first.run_id), 60, "the run worker's pid")
    daemon.kill("daemon")  # its process group: the daemon, its code server and every run worker
    # what the kill broke: every run that had left the queue and not ended (nobody reports their end now)
    broken = {r.run_id: r for r in daemon.runs(statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED])}
    assert first.run_id in broken
    assert not [pid for pid in map(daemon.run_worker_pid, broken) if pid is not None and worker_alive(pid)]
    daemon.start_daemon()

    # (a) the retry training: its worker alone killed, the daemon alive
    retry = wait_for(lambda: _retry_of(daemon, first.run_id), TIMEOUT, "the retry of the run the kill broke")
    wait_for(lambda: _training(daemon, retry.run_id), TIMEOUT, "the retry's training", every=0.5)
    os.kill(wait_for(lambda: daemon.run_worker_pid(retry.run_id), 60, "the retry's worker pid"), signal.SIGKILL)
    wait_for(lambda: refreshed(daemon, keys), TIMEOUT, "the refresh to finish after both kills")

    runs = daemon.runs()
    counts = materialised(daemon, keys)
    # beta's runs were killed in the middle of training: once each. Another run the daemon's kill broke
    # (pca's, a report) may have been between a step's write and Dagster's record of its end: its retry
    # runs that step again, with the same content (the tables are compared below; README "When things
    # go wrong")
    assets = {"dataset_inputs": DATASET_ASSETS, "dataset_report": REPORT_ASSETS, "models_demo": MODEL_ASSETS}
    again = {(a, r.tags["dagster/partition"]) for r in broken.values() if r.run_id != first.run_id
             for a in assets.get(r.job_name, ())}
    assert all(n == 1 or (n == 2 and key in again) for key, n in counts.items()), \
        ({k: v for k, v in counts.items() if v != 1}, daemon.failures())
    assert all(r.is_finished for r in runs)  # nothing left STARTED: dead_run_workers failed both broken runs
    assert Counter(r.job_name for r in runs if r.is_success) == Counter(
        {"dataset_inputs": 1, "models_demo": 2, "dataset_report": 1, "summaries": 1})
    last = _retry_of(daemon, retry.run_id)
    killed = [*broken, retry.run_id]
    assert {r.status for r in daemon.runs(run_ids=killed)} == {dg.DagsterRunStatus.FAILURE}
    assert last is not None and last.is_success and last.tags["dagster/retry_number"] == "2"
    assert retry.tags["dagster/retry_number"] == "1" and retry.tags["dagster/partition"] == f"{DATASET}|beta"
    for run_id, run in broken.items():  # each run the daemon's death broke was retried, in the same job
        again = _retry_of(daemon, run_id)
        assert again is not None and again.job_name == run.job_name and again.tags["dagster/retry_number"] == "1"
    failures = Lake(daemon.lake).table("refresh_failures")
    assert sorted(failures["run_id"]) == sorted(killed) and failures["will_retry"].all()
    assert all(LEFTOVER.search(p) for p in hidden_leftovers(daemon.lake))  # hidden: no view or loader reads them

    # whole versions only: every table equals the clean run's
    out, _ = reference.communicate(timeout=TIMEOUT)
    assert reference.returncode == 0, out[-3000:]
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
