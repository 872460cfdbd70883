"""The Definitions: asset keys, partitions and automation, asset checks, sensors and schedules, the
dataset x model type partitions, and that loading them does not import TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg

from cpvae_assets.definitions import defs
from cpvae_assets.orchestration.partitions import (
    MODEL_TYPES,
    dataset_model_partitions,
    dataset_partitions,
    model_type_partitions,
)
from cpvae_assets.storage.paths import project_root

PROJECT = project_root()


def test_asset_keys_and_partitions() -> None:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"raw_profiles", "normalised_splits", "remote_files", "tuned_hyperparameters", "trained_models",
                    "training_curves", "latent_embeddings", "generation_qc", "moa_groups", "moa_means",
                    "lsa_predictions", "lsa_distances", "shuffled_null", "lsa_zscores", "lsa_summary", "leave_moa_out",
                    "method_comparison", "latent_traversal", "feature_group_contributions", "latent_correlation", "report", "refresh_failures"}
    materialisable = {k.to_user_string() for a in defs.assets if isinstance(a, dg.AssetsDefinition) for k in a.keys}
    # refresh_failures is written by a run-failure sensor (a runless event), never by a run
    assert materialisable == keys - {"refresh_failures"}
    assert not graph.get(dg.AssetKey("refresh_failures")).is_materializable
    for name in ("tuned_hyperparameters", "trained_models", "training_curves", "latent_embeddings", "generation_qc",
                 "moa_means", "lsa_predictions", "lsa_distances", "shuffled_null", "lsa_zscores",
                 "method_comparison", "latent_traversal", "feature_group_contributions", "latent_correlation"):
        partitions = graph.get(dg.AssetKey(name)).partitions_def
        assert isinstance(partitions, dg.MultiPartitionsDefinition), name
    assert graph.get(dg.AssetKey("moa_groups")).partitions_def.name == "dataset"
    # the report of a dataset reads every model type's partition of it
    report = graph.get(dg.AssetKey("report"))
    assert report.partitions_def.name == "dataset"
    assert {k.to_user_string() for k in report.parent_keys} >= {"lsa_zscores", "method_comparison", "feature_group_contributions",
                                                                "latent_correlation", "generation_qc", "training_curves"}
    assert graph.get(dg.AssetKey("lsa_summary")).partitions_def is None
    for name in ("raw_profiles", "normalised_splits"):
        partitions = graph.get(dg.AssetKey(name)).partitions_def
        assert isinstance(partitions, dg.DynamicPartitionsDefinition)
        assert partitions.name == "dataset"
    assert graph.get(dg.AssetKey("remote_files")).partitions_def is None
    # refreshes follow the plan of runs (defs/refresh.py), not per-asset automation that would start
    # a dataset's report before its models (one run per partition and tick, each importing TensorFlow)
    assert all(graph.get(k).automation_condition is None for k in graph.get_all_asset_keys())


def test_asset_checks() -> None:
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks == {
        ("raw_profiles", "required_metadata"), ("raw_profiles", "feature_count"),
        ("normalised_splits", "no_nonfinite_features"), ("normalised_splits", "split_proportions"),
        ("normalised_splits", "every_stratum_in_training"),
        ("trained_models", "real_beats_shuffled"), ("training_curves", "finite_losses"),
        ("latent_embeddings", "one_row_per_profile"),
    }


def test_sensors_and_schedule() -> None:
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == {"landing_sensor", "refresh_plan", "record_failures", "dead_run_workers"}
    assert isinstance(sensors["refresh_plan"], dg.RunStatusSensorDefinition)
    assert isinstance(sensors["record_failures"], dg.RunStatusSensorDefinition)
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    schedules = {s.name: s for s in defs.schedules}
    assert set(schedules) == {"weekly_remote_manifest_check"}
    assert schedules["weekly_remote_manifest_check"].cron_schedule == "0 6 * * 1"
    assert schedules["weekly_remote_manifest_check"].default_status == dg.DefaultScheduleStatus.STOPPED
    assert {"io_manager", "lake", "lincs_remote"} <= set(defs.resources)
    defs.validate_loadable(defs)


def test_dataset_model_partitions() -> None:
    key = dg.MultiPartitionKey({"dataset": "d1", "model_type": "pca"})
    assert str(key) == "d1|pca"
    assert MODEL_TYPES == ("vanilla", "beta", "mmd", "pca")
    assert set(model_type_partitions.get_partition_keys()) == {"vanilla", "beta", "mmd", "pca"}
    dims = {d.name: d.partitions_def for d in dataset_model_partitions.partitions_defs}
    assert dims["dataset"] is dataset_partitions
    assert dims["model_type"] is model_type_partitions
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions("dataset", ["d1"])
        keys = dataset_model_partitions.get_partition_keys(dynamic_partitions_store=inst)
    assert sorted(str(k) for k in keys) == sorted(f"d1|{m}" for m in MODEL_TYPES)


def test_definitions_do_not_import_tensorflow() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import cpvae_assets.definitions, sys; print('tensorflow' in sys.modules)"],
        cwd=PROJECT, capture_output=True, text=True, timeout=300, check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "False"
