"""The refresh path: new landing content runs the same plan of runs as ``cpvae demo`` (defs/jobs.py),
one run per partition per change, each run started only once what it reads is done.

The landing sensor starts ``dataset_inputs`` for the changed dataset, tagged with the change; this
sensor follows every successful run of a change: after the inputs, one models run per model type;
after the last model type, the report and the summaries. Run keys make every request happen once,
also when a run is retried. The budget is ``$CPVAE_REFRESH_PRESET`` (``demo`` by default, ``paper``
for production), the model types ``$CPVAE_REFRESH_MODEL_TYPES`` (comma-separated, default all).
"""

from __future__ import annotations

import os

import dagster as dg

from cpvae_assets.defs.jobs import MODEL_CONFIG, dataset_inputs, dataset_report, model_jobs, summaries
from cpvae_assets.orchestration.tags import REFRESH_TAG
from cpvae_assets.schema import MODEL_TYPES, PRESETS

PRESET_ENV, MODEL_TYPES_ENV = "CPVAE_REFRESH_PRESET", "CPVAE_REFRESH_MODEL_TYPES"


def refresh_budget() -> tuple[str, tuple[str, ...]]:
    """The preset and model types the refresh runs with, from the environment (checked)."""
    preset = os.environ.get(PRESET_ENV, "demo")
    if preset not in PRESETS:
        raise ValueError(f"${PRESET_ENV}={preset!r}: expected one of {', '.join(PRESETS)}")
    raw = os.environ.get(MODEL_TYPES_ENV, "")
    types = tuple(t.strip() for t in raw.split(",") if t.strip()) or MODEL_TYPES
    unknown = [t for t in types if t not in MODEL_TYPES]
    if unknown:
        raise ValueError(f"${MODEL_TYPES_ENV}: unknown model types {unknown}; expected some of {', '.join(MODEL_TYPES)}")
    return preset, types


def _succeeded(instance: dg.DagsterInstance, job: str, change: str) -> set[str]:
    """Partitions of ``job`` with a successful run for this change (retries included)."""
    runs = instance.get_runs(dg.RunsFilter(job_name=job, tags={REFRESH_TAG: change},
                                           statuses=[dg.DagsterRunStatus.SUCCESS]))
    return {r.tags.get("dagster/partition", "") for r in runs}


# The daemon evaluates sensors at most every 5 s (its loop); a minimum interval of 5 s as well made it
# skip a loop now and then, and a run's successors waited up to 10 s (8.5 s seen before a report)
@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS, name="refresh_plan", minimum_interval_seconds=1,
    default_status=dg.DefaultSensorStatus.RUNNING, request_jobs=[*model_jobs.values(), dataset_report, summaries],
    description="After each successful run of a landing change: the next runs of the dataset's plan.")
def refresh_plan(context: dg.RunStatusSensorContext):
    run = context.dagster_run
    change = run.tags.get(REFRESH_TAG)
    if not change:  # launched by hand or by cpvae demo: not part of a refresh
        return dg.SkipReason(f"run {run.run_id} is not part of a landing refresh")
    preset, model_types = refresh_budget()
    # a dataset x model_type run carries its dimensions as tags of their own
    dataset = run.tags.get("dagster/partition/dataset") or run.tags.get("dagster/partition", "")
    tags = {REFRESH_TAG: change}
    if run.job_name == dataset_inputs.name:
        return [dg.RunRequest(job_name=model_jobs[preset].name, run_key=f"{change}:{m}", tags=tags,
                              partition_key=dg.MultiPartitionKey({"dataset": dataset, "model_type": m}),
                              run_config={"ops": MODEL_CONFIG[preset]})
                for m in model_types]
    if run.job_name in {j.name for j in model_jobs.values()}:
        done = _succeeded(context.instance, run.job_name, change)
        if all(f"{dataset}|{m}" in done for m in model_types):
            return [dg.RunRequest(job_name=dataset_report.name, partition_key=dataset, run_key=f"{change}:report",
                                  tags=tags),
                    dg.RunRequest(job_name=summaries.name, run_key=f"{change}:summaries", tags=tags)]
        return dg.SkipReason(f"{dataset}: {len(done)} of {len(model_types)} model types done")
    return dg.SkipReason(f"{run.job_name}: the last run of the plan")
