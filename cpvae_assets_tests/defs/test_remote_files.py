"""The remote_files asset offline (status of the registered remote files) and the weekly schedule."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from cpvae_assets.definitions import defs
from cpvae_assets.storage.lake import Lake
from cpvae_assets_tests.support.dagster_runs import PLATE, resources
from cpvae_assets_tests.support.helpers import failure_text

# --------------------------------------------------------------------------------------------- remote files


def test_remote_files_offline_status_and_unknown_dataset(lake: Path, instance: dg.DagsterInstance) -> None:
    result = dg.materialize(list(defs.assets), selection=["remote_files"], instance=instance,
                            resources=resources(lake))
    assert result.success
    status = Lake(lake).table("remote_files")
    assert set(status["dataset"]) == {"lincs_cp_level5", "lincs_cp_level4"}
    assert set(status["status"]) == {"absent"}
    metadata = result.asset_materializations_for_node("remote_files")[0].metadata
    assert metadata["verified"].value == 0 and metadata["files"].value == len(status)

    unknown = dg.materialize(list(defs.assets), selection=["remote_files"], instance=instance,
                             resources=resources(lake), raise_on_error=False,
                             run_config={"ops": {"remote_files": {"config": {"datasets": [PLATE]}}}})
    assert not unknown.success
    assert "no remote files registered" in failure_text(unknown)
    # a name the registry lacks stays unknown: not retried after the network back-off
    assert not [e for e in unknown.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]


def test_weekly_schedule_downloads_remote_files() -> None:
    schedule = next(s for s in defs.schedules if s.name == "weekly_remote_manifest_check")
    [request] = schedule.evaluate_tick(dg.build_schedule_context()).run_requests
    assert request.run_config["ops"]["remote_files"]["config"]["download"] is True
    assert not request.partition_key
