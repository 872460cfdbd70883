"""The landing sensor (cursor, touched and changed files, bad names, escaping symlinks, content already
ingested), an escaping dataset folder refused by the asset, and the refresh plan that follows a change."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import uuid
from pathlib import Path

import dagster as dg
import pytest

from cpvae_assets.defs.jobs import MODEL_CONFIG
from cpvae_assets.defs.refresh import MODEL_TYPES_ENV, PRESET_ENV, refresh_budget, refresh_plan
from cpvae_assets.defs.sensors import landing_sensor
from cpvae_assets.orchestration.resources import LakeResource
from cpvae_assets.orchestration.tags import REFRESH_TAG
from cpvae_assets.schema import MODEL_TYPES
from cpvae_assets_tests.support.dagster_runs import PLATE, land_plate, materialise, part
from cpvae_assets_tests.support.helpers import failure_text
from cpvae_assets_tests.support.real_data import REAL_CP


def sensor_context(instance: dg.DagsterInstance, lake: Path, cursor: str | None = None):
    return dg.build_sensor_context(instance=instance, cursor=cursor, resources={"lake": LakeResource(root=str(lake))})


# --------------------------------------------------------------------------------------------- sensor


def test_landing_sensor_cursor_touch_and_change(lake: Path, instance: dg.DagsterInstance) -> None:
    land_plate(lake, "plate_a")
    second = land_plate(lake, "plate_b")

    first = landing_sensor(sensor_context(instance, lake))
    assert sorted(r.partition_key for r in first.run_requests) == ["plate_a", "plate_b"]
    assert len({r.run_key for r in first.run_requests}) == 2
    [add] = first.dynamic_partitions_requests
    assert isinstance(add, dg.AddDynamicPartitionsRequest)
    assert add.partitions_def_name == "dataset"
    assert sorted(add.partition_keys) == ["plate_a", "plate_b"]
    instance.add_dynamic_partitions("dataset", list(add.partition_keys))
    keys = {r.partition_key: r.run_key for r in first.run_requests}

    quiet = landing_sensor(sensor_context(instance, lake, first.cursor))
    assert not quiet.run_requests
    assert not quiet.dynamic_partitions_requests

    stat = second.stat()
    os.utime(second, ns=(stat.st_atime_ns + 5_000_000_000, stat.st_mtime_ns + 5_000_000_000))
    touched = landing_sensor(sensor_context(instance, lake, quiet.cursor))
    assert not touched.run_requests

    data = gzip.decompress(second.read_bytes())
    second.write_bytes(gzip.compress(data.replace(b"\n", b"\r\n", 1), mtime=0))
    changed = landing_sensor(sensor_context(instance, lake, touched.cursor))
    assert [r.partition_key for r in changed.run_requests] == ["plate_b"]
    assert changed.run_requests[0].run_key != keys["plate_b"]
    assert not changed.dynamic_partitions_requests

    settled = landing_sensor(sensor_context(instance, lake, changed.cursor))
    assert not settled.run_requests


def test_landing_sensor_skips_bad_names_and_escaping_symlinks(lake: Path, tmp_path: Path,
                                                              instance: dg.DagsterInstance) -> None:
    land_plate(lake, "good")
    land_plate(lake, "bad name!")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copyfile(REAL_CP, outside / REAL_CP.name)
    (lake / "landing" / "escaped").symlink_to(outside, target_is_directory=True)
    (lake / "landing" / "leaky").mkdir()
    (lake / "landing" / "leaky" / REAL_CP.name).symlink_to(outside / REAL_CP.name)
    (lake / "landing" / "empty").mkdir()

    result = landing_sensor(sensor_context(instance, lake))
    assert [r.partition_key for r in result.run_requests] == ["good"]
    [add] = result.dynamic_partitions_requests
    assert list(add.partition_keys) == ["good"]
    assert set(json.loads(result.cursor)) == {"good"}


def test_landing_sensor_without_landing_folder(instance: dg.DagsterInstance, lake: Path) -> None:
    result = landing_sensor(sensor_context(instance, lake))
    assert not result.run_requests and not result.dynamic_partitions_requests


def test_escaping_symlinked_dataset_folder_is_refused_by_asset(lake: Path, tmp_path: Path,
                                                                instance: dg.DagsterInstance) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copyfile(REAL_CP, outside / REAL_CP.name)
    (lake / "landing").mkdir()
    (lake / "landing" / PLATE).symlink_to(outside, target_is_directory=True)
    result = materialise(lake, instance, ["raw_profiles"])
    assert not result.success
    text = failure_text(result)
    assert "resolves to" in text and str(outside) in text
    assert not part(lake, "raw_profiles").exists()


def test_sensor_skips_dataset_already_ingested(lake: Path, instance: dg.DagsterInstance) -> None:
    land_plate(lake)
    assert materialise(lake, instance, ["raw_profiles"]).success
    land_plate(lake, "plate_new")
    result = landing_sensor(sensor_context(instance, lake))
    assert [r.partition_key for r in result.run_requests] == ["plate_new"]
    [add] = result.dynamic_partitions_requests
    assert list(add.partition_keys) == ["plate_new"]

    # content changes after ingestion: the stored hash no longer matches, so it is ingested again
    landed = lake / "landing" / PLATE / REAL_CP.name
    landed.write_bytes(gzip.compress(gzip.decompress(landed.read_bytes()) + b"\n", mtime=0))
    again = landing_sensor(sensor_context(instance, lake))
    assert sorted(r.partition_key for r in again.run_requests) == ["lincs_cp_plate", "plate_new"]

    # once the new content is ingested, the latest materialisation's hash is the one compared
    assert materialise(lake, instance, ["raw_profiles"]).success
    latest = landing_sensor(sensor_context(instance, lake))
    assert [r.partition_key for r in latest.run_requests] == ["plate_new"]


def _finished(instance: dg.DagsterInstance, job: str, partition: str, change: str | None) -> dg.DagsterRun:
    """A successful run of ``job`` for ``partition`` recorded in the instance, as the daemon would see it."""
    tags = {"dagster/partition": partition, **({REFRESH_TAG: change} if change else {})}
    if "|" in partition:
        tags |= dict(zip(("dagster/partition/dataset", "dagster/partition/model_type"), partition.split("|")))
    run = dg.DagsterRun(job_name=job, run_id=str(uuid.uuid4()), tags=tags, status=dg.DagsterRunStatus.SUCCESS)
    instance.add_run(run)
    return run


def _plan_after(instance: dg.DagsterInstance, run: dg.DagsterRun):
    event = dg.DagsterEvent(event_type_value="PIPELINE_SUCCESS", job_name=run.job_name)
    context = dg.build_run_status_sensor_context(sensor_name="refresh_plan", dagster_event=event,
                                                 dagster_instance=instance, dagster_run=run)
    return refresh_plan(context)


def test_refresh_runs_the_plan_once_per_change(instance: dg.DagsterInstance, monkeypatch) -> None:
    """Inputs -> one models run per model type (the preset's config) -> the report and the summaries
    once every model type succeeded; runs not started by the landing sensor start nothing."""
    monkeypatch.setenv(PRESET_ENV, "demo")
    monkeypatch.delenv(MODEL_TYPES_ENV, raising=False)
    change = f"{PLATE}:1:abc"
    models = _plan_after(instance, _finished(instance, "dataset_inputs", PLATE, change))
    assert [str(r.partition_key) for r in models] == [f"{PLATE}|{m}" for m in MODEL_TYPES]
    assert {r.job_name for r in models} == {"models_demo"} and len({r.run_key for r in models}) == 4
    assert all(r.run_config == {"ops": MODEL_CONFIG["demo"]} and r.tags[REFRESH_TAG] == change for r in models)
    for model_type in MODEL_TYPES[:-1]:
        waiting = _plan_after(instance, _finished(instance, "models_demo", f"{PLATE}|{model_type}", change))
        assert isinstance(waiting, dg.SkipReason)
    last = _plan_after(instance, _finished(instance, "models_demo", f"{PLATE}|{MODEL_TYPES[-1]}", change))
    assert [(r.job_name, r.partition_key) for r in last] == [("dataset_report", PLATE), ("summaries", None)]
    assert len({r.run_key for r in [*models, *last]}) == 6  # a retried run's success requests nothing new
    assert isinstance(_plan_after(instance, _finished(instance, "dataset_report", PLATE, change)), dg.SkipReason)
    assert isinstance(_plan_after(instance, _finished(instance, "dataset_inputs", "other", None)), dg.SkipReason)


def test_refresh_budget_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(PRESET_ENV, "paper")
    monkeypatch.setenv(MODEL_TYPES_ENV, "beta, pca")
    assert refresh_budget() == ("paper", ("beta", "pca"))
    monkeypatch.setenv(PRESET_ENV, "huge")
    with pytest.raises(ValueError, match="CPVAE_REFRESH_PRESET='huge'"):
        refresh_budget()
    monkeypatch.setenv(PRESET_ENV, "demo")
    monkeypatch.setenv(MODEL_TYPES_ENV, "gan")
    with pytest.raises(ValueError, match="unknown model types"):
        refresh_budget()


def test_landing_sensor_starts_the_refresh(lake: Path, instance: dg.DagsterInstance) -> None:
    land_plate(lake)
    [request] = landing_sensor(sensor_context(instance, lake)).run_requests
    assert request.tags[REFRESH_TAG] == request.run_key and request.partition_key == PLATE
    assert landing_sensor.job_name == "dataset_inputs"
