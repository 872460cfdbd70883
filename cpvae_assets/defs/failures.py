"""Failed runs, one line each, where a user looks: the ``refresh_failures`` table (SQL) and the asset of
that name in the UI. A refresh left alone overnight must not leave a hole without a trace.

Retries themselves are the instance's (``run_retries`` in deploy/dagster*.yaml): a run whose worker
crashed is retried, a run whose step failed is not (bad input, a failed blocking check and code errors
fail the same way again). The line says whether the daemon will retry it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import dagster as dg
import pandas as pd

from cpvae_assets.orchestration.tags import REFRESH_TAG
from cpvae_assets.storage.lake import Lake
from cpvae_assets.storage.tables import write_table

ASSET = "refresh_failures"
COLUMNS = ("failed_at", "dataset", "model_type", "job", "partition", "run_id", "error", "retry_number",
           "will_retry", "refresh")

refresh_failures_spec = dg.AssetSpec(
    ASSET, group_name="operations", kinds={"parquet"},
    description="One row per failed run (any job): when, which partition, the error, whether it is retried. "
                "Written by the run_failure_sensor `record_failures`; view `refresh_failures`.")


def failure_row(run: dg.DagsterRun, error: str, when: dt.datetime, will_retry: bool) -> dict[str, object]:
    tags = run.tags
    partition = tags.get("dagster/partition", "")
    return {"failed_at": when, "dataset": tags.get("dagster/partition/dataset") or partition.split("|")[0] or None,
            "model_type": tags.get("dagster/partition/model_type"), "job": run.job_name, "partition": partition or None,
            "run_id": run.run_id, "error": " ".join(error.split())[:1000],
            "retry_number": int(tags.get("dagster/retry_number", 0)),
            "will_retry": will_retry, "refresh": tags.get(REFRESH_TAG)}


def append_failure(lake: Lake, row: dict[str, object]) -> int:
    """Add ``row`` to the table (written beside and renamed, like every table); returns its length.

    A run fails once: a second report of the same run (a run-failure sensor delivers at least once, e.g.
    again after a daemon restart) leaves the table as it is."""
    old = lake.table(ASSET) if lake.has(ASSET) else pd.DataFrame(columns=list(COLUMNS))
    if len(old) and row["run_id"] in set(old["run_id"]):
        return len(old)
    frame = pd.concat([old, pd.DataFrame([row], columns=list(COLUMNS))], ignore_index=True) if len(old) else \
        pd.DataFrame([row], columns=list(COLUMNS))
    write_table(frame, lake.path(ASSET))
    return len(frame)


def record_failure(lake: Lake, row: dict[str, object]) -> tuple[int, str | None]:
    """The line, then the SQL catalog's view of it; returns the table's length and why the catalog was
    not rebuilt (None where it was). The sensor reports each run once (a tick that raises still moves
    its cursor on), and a new catalog file needs a few hundred kilobytes where the line needs a few: on
    a nearly full disk the line is kept, and the table's first query makes its view (``storage/sql.run``)."""
    import duckdb

    from cpvae_assets.storage.catalog import rebuild_catalog

    rows = append_failure(lake, row)
    try:
        rebuild_catalog(lake.root)
    except (OSError, duckdb.IOException) as error:  # DuckDB's "No space left on device" is its own error
        return rows, f"the line is written; the SQL catalog was not rebuilt: {error}"
    return rows, None


@dg.run_failure_sensor(name="record_failures", default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=10,
                       description="Writes a line per failed run to the refresh_failures table.")
def record_failures(context: dg.RunFailureSensorContext, lake: dg.ResourceParam[Lake]) -> None:
    run = context.instance.get_run_by_id(context.dagster_run.run_id) or context.dagster_run  # with the daemon's tags
    steps = context.get_step_failure_events()
    error = next((str(e.event_specific_data.error.message) for e in steps
                  if e.event_specific_data and e.event_specific_data.error), None) \
        or (context.failure_event.message or "the run failed")
    instance = context.instance
    retried = int(run.tags.get("dagster/retry_number", 0))
    will_retry = bool(instance.run_retries_enabled and retried < instance.run_retries_max_retries
                      and (not steps or instance.run_retries_retry_on_asset_or_op_failure))
    row = failure_row(run, error, dt.datetime.now(dt.UTC), will_retry)
    rows, catalog_problem = record_failure(lake, row)
    if catalog_problem:
        context.log.warning(catalog_problem)
    context.instance.report_runless_asset_event(dg.AssetMaterialization(
        ASSET, metadata={"rows": rows, "run_id": run.run_id, "partition": row["partition"] or "-",
                         "error": row["error"][:300], "will_retry": row["will_retry"]}))
    context.log.warning(f"{run.job_name} {row['partition'] or ''} failed (run {run.run_id}, "
                        f"{'retried' if will_retry else 'not retried'}): {row['error'][:200]}")


PID = re.compile(r"pid: (\d+)")


def worker_alive(pid: int) -> bool:
    """Is the process alive and a Python process (a recycled pid running something else counts as gone)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return b"python" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # no /proc (macOS): the pid alone
        return True


def run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        match = PID.search(record.message or "")
        if match and "started process for run" in (record.message or "").lower():
            return int(match.group(1))
    return None


@dg.sensor(name="dead_run_workers", default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=15,
           description="Marks a STARTED run failed when its worker process is gone (the local run launcher "
                       "cannot report it; Kubernetes' can), so run retries and record_failures take over.")
def dead_run_workers(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    from dagster._core.launcher import DefaultRunLauncher

    instance = context.instance
    if not isinstance(instance.run_launcher, DefaultRunLauncher):
        return dg.SkipReason("the run launcher checks its own workers")
    gone = []
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        pid = run_worker_pid(instance, run.run_id)
        if pid is not None and not worker_alive(pid):
            instance.report_run_failed(run, f"the run worker (pid {pid}) is gone: killed, or its host or daemon "
                                            "restarted; the run is retried if retries remain")
            gone.append(run.run_id)
    return dg.SkipReason(f"marked failed: {', '.join(gone)}" if gone else "every started run has its worker")
