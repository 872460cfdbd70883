"""The landing sensor (cursor, touched and changed files, bad names, escaping symlinks, content already
ingested), an escaping dataset folder refused by the asset, and eager automation after new raw profiles."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import dagster as dg

from cpvae_assets.definitions import defs
from cpvae_assets.defs.sensors import landing_sensor
from cpvae_assets.orchestration.resources import LakeResource
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


def test_eager_automation_follows_new_raw_profiles(lake: Path, instance: dg.DagsterInstance) -> None:
    land_plate(lake)
    instance.add_dynamic_partitions("dataset", [PLATE])
    before = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert before.get_num_requested(dg.AssetKey("normalised_splits")) == 0
    assert materialise(lake, instance, ["raw_profiles"]).success
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)
    assert after.get_requested_partitions(dg.AssetKey("normalised_splits")) == {PLATE}
    assert after.get_num_requested(dg.AssetKey("raw_profiles")) == 0
