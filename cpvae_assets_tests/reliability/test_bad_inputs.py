"""The bad-input corpus: each broken file dropped into the landing folder of a stored dataset fails
its run with one line naming the file and the problem, leaves the lake byte-identical, and is
remembered by the sensor (by content hash) so it is not retried until the content changes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from cpvae_assets.definitions import defs
from cpvae_assets.defs.sensors import landing_sensor
from cpvae_assets.ingestion.landing import fingerprint
from cpvae_assets.orchestration.io_manager import LakeIOManager
from cpvae_assets.orchestration.resources import LakeResource, LincsRemoteResource
from cpvae_assets.storage.catalog import rebuild_catalog
from cpvae_assets.storage.lake import Lake
from cpvae_assets_tests.support.bad_inputs_corpus import CORPUS, base_plate, csv_bytes, write
from cpvae_assets_tests.support.real_data import REAL_CP
from cpvae_assets_tests.support.reliability_support import PLATE, tree


def resources(lake: Path) -> dict:
    return {"io_manager": LakeIOManager(root=str(lake)), "lake": LakeResource(root=str(lake)),
            "lincs_remote": LincsRemoteResource()}


def ingest(lake: Path, instance: dg.DagsterInstance, tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
    if PLATE not in instance.get_dynamic_partitions("dataset"):
        instance.add_dynamic_partitions("dataset", [PLATE])
    return dg.materialize(list(defs.assets), selection=["raw_profiles"], partition_key=PLATE, instance=instance,
                          resources=resources(lake), tags=tags or {}, raise_on_error=False)


def first_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    """What the UI shows first for each failed step: the failure's description, else the error's message."""
    lines = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            text = data.user_failure_data.description if data.user_failure_data else data.error.message
            lines.append(text)
    return lines


def stored_state(lake: Path) -> dict[str, str]:
    return tree(lake, skip=("dagster_home", "landing"), hidden=True)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake whose dataset (the first 40 wells of the real plate) is stored."""
    lake = tmp_path_factory.mktemp("template") / "lake"
    (lake / "landing" / PLATE).mkdir(parents=True)
    (lake / "landing" / PLATE / "plate.csv").write_bytes(csv_bytes(pd.read_csv(REAL_CP, nrows=40)))
    with dg.instance_for_test() as instance:
        result = ingest(lake, instance)
        assert result.success
    return lake


@pytest.fixture(scope="module")
def shared_instance():
    with dg.instance_for_test() as instance:
        yield instance


def copy_of(template: Path, lake: Path) -> Path:
    shutil.copytree(template, lake, dirs_exist_ok=True)
    rebuild_catalog(lake)  # its views point at the copy
    return lake


@pytest.mark.parametrize("bad", CORPUS, ids=[b.name for b in CORPUS])
def test_bad_file_is_rejected_in_one_line_and_the_lake_is_unchanged(template: Path, lake: Path, bad,
                                                                     shared_instance: dg.DagsterInstance) -> None:
    copy_of(template, lake)
    landing = lake / "landing" / PLATE
    path = write(bad, base_plate(), landing)
    before = stored_state(lake)
    digest, _ = fingerprint(landing)

    result = ingest(lake, shared_instance, tags={"cpvae/landing_sha256": digest})

    assert not result.success
    (line,) = first_lines(result)
    assert "\n" not in line.strip() and "Traceback" not in line
    assert bad.name in line, line
    assert re.search(bad.problem, line), f"{line!r} lacks {bad.problem!r}"
    assert stored_state(lake) == before  # byte-identical, hidden files included
    tags = shared_instance.get_run_by_id(result.run_id).tags
    assert tags["cpvae/rejected"] == digest and bad.name in tags["cpvae/rejection"]
    assert path.exists()  # the user's file is left where it is


def test_corpus_size() -> None:
    assert len(CORPUS) >= 15 and len({b.name for b in CORPUS}) == len(CORPUS)


def test_utf8_bom_is_accepted_and_stripped(template: Path, lake: Path, shared_instance: dg.DagsterInstance) -> None:
    """Excel's 'CSV UTF-8' starts with a byte-order mark: accepted, and the first column keeps its name."""
    copy_of(template, lake)
    (lake / "landing" / PLATE / "excel_export.csv").write_bytes(b"\xef\xbb\xbf" + csv_bytes(base_plate()))
    result = ingest(lake, shared_instance)
    assert result.success
    stored = Lake(lake).table("raw_profiles", PLATE)
    assert len(stored) == 60 and "Metadata_plate_map_name" in stored.columns
    assert not any("\ufeff" in c for c in stored.columns)


# --------------------------------------------------------------------------- the sensor


def tick(instance: dg.DagsterInstance, lake: Path, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"lake": LakeResource(root=str(lake))})
    return landing_sensor(context)


def run_requested(instance: dg.DagsterInstance, lake: Path, result: dg.SensorResult) -> dg.ExecuteInProcessResult:
    (request,) = result.run_requests
    for add in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions("dataset", list(add.partition_keys))
    return ingest(lake, instance, tags=request.tags)


def test_sensor_records_rejected_content_and_accepts_a_corrected_file(template: Path, lake: Path) -> None:
    copy_of(template, lake)
    landing = lake / "landing" / PLATE
    with dg.instance_for_test() as instance:
        first = tick(instance, lake, None)
        assert run_requested(instance, lake, first).success

        bad = landing / "second_plate.csv"
        bad_bytes = csv_bytes(base_plate()).replace(b",0.0,", b",oops,", 1)  # text in a cell
        bad.write_bytes(bad_bytes)
        stored = stored_state(lake)
        second = tick(instance, lake, first.cursor)
        assert [r.partition_key for r in second.run_requests] == [PLATE]
        failed = run_requested(instance, lake, second)
        assert not failed.success

        # the next ticks request nothing, and the cursor names the rejected content and why
        third = tick(instance, lake, second.cursor)
        assert not third.run_requests
        bad_hash, _ = fingerprint(landing)
        rejected = json.loads(third.cursor)[PLATE]["rejected"]
        assert list(rejected) == [bad_hash] and "second_plate.csv" in rejected[bad_hash]
        assert not tick(instance, lake, third.cursor).run_requests
        # a lost cursor does not bring it back: the failed run's tags are the durable record
        assert not tick(instance, lake, None).run_requests
        assert stored_state(lake) == stored

        # a corrected file is ingested
        bad.write_bytes(csv_bytes(base_plate()))
        fixed = tick(instance, lake, third.cursor)
        assert [r.partition_key for r in fixed.run_requests] == [PLATE]
        assert run_requested(instance, lake, fixed).success
        assert len(Lake(lake).table("raw_profiles", PLATE)) == 60

        # the rejected content coming back is recognised by its hash and not requested again
        bad.write_bytes(bad_bytes)
        again = tick(instance, lake, tick(instance, lake, fixed.cursor).cursor)
        assert not again.run_requests


# --------------------------------------------------------------------------- freshness


def test_downstream_is_stale_exactly_when_the_landing_content_changed(template: Path, lake: Path) -> None:
    from dagster._core.definitions.data_version import (
        CachingStaleStatusResolver,
        StaleStatus,
    )
    from dagster._core.loader import LoadingContextForTest

    copy_of(template, lake)
    landing = lake / "landing" / PLATE

    def status(instance: dg.DagsterInstance) -> StaleStatus:
        resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))
        return resolver.get_status(dg.AssetKey("normalised_splits"), PLATE)

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("dataset", [PLATE])
        both = dg.materialize(list(defs.assets), selection=["raw_profiles", "normalised_splits"], partition_key=PLATE,
                              instance=instance, resources=resources(lake), raise_on_error=False)
        assert both.success
        digest, _ = fingerprint(landing)
        assert both.asset_materializations_for_node("raw_profiles")[0].tags["dagster/data_version"] == digest
        assert status(instance) == StaleStatus.FRESH
        assert ingest(lake, instance).success  # the same content again
        assert status(instance) == StaleStatus.FRESH
        (landing / "second_plate.csv").write_bytes(csv_bytes(base_plate()))
        assert ingest(lake, instance).success
        assert status(instance) == StaleStatus.STALE
