"""The watchdog for run workers that died without a word (a killed daemon, a crashed host): the local
run launcher cannot report them, so a STARTED run would hold its pool slot forever."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType

from cpvae_assets.defs.failures import dead_run_workers, worker_alive


@dg.op
def noop() -> None:
    pass


@dg.job
def one_step() -> None:
    noop()


def _started_run(instance: dg.DagsterInstance, pid: int) -> dg.DagsterRun:
    run = instance.create_run_for_job(one_step)
    instance.report_dagster_event(DagsterEvent(DagsterEventType.PIPELINE_START.value, job_name=run.job_name),
                                  run_id=run.run_id)
    instance.report_engine_event(f"Started process for run (pid: {pid}).", run)
    return run


def test_worker_alive() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert worker_alive(os.getpid()) and not worker_alive(gone.pid)


def test_a_started_run_without_its_worker_is_marked_failed_and_a_live_one_is_left() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with dg.instance_for_test() as instance:
        dead, alive = _started_run(instance, gone.pid), _started_run(instance, os.getpid())
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.STARTED
        result = dead_run_workers(dg.build_sensor_context(instance=instance))
        assert dead.run_id in result.skip_message
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED
        failure = instance.all_logs(dead.run_id, of_type=DagsterEventType.PIPELINE_FAILURE)[0]
        assert f"pid {gone.pid}" in failure.message
