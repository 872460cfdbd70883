"""The Dagster layer: definitions, end-to-end materialisation, refusals, the landing sensor, the CLI."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from cpvae_assets.definitions import defs
from cpvae_assets.defs.sensors import landing_sensor
from cpvae_assets.ingestion.demo_data import DemoConfig, generate_demo
from cpvae_assets.orchestration.io_manager import LakeIOManager
from cpvae_assets.orchestration.partitions import MODEL_TYPES, dataset_model_partitions, dataset_partitions, model_type_partitions
from cpvae_assets.orchestration.resources import LakeResource, LincsRemoteResource
from cpvae_assets.preprocessing.splits import FRACTIONS, SPLITS
from cpvae_assets.storage.lake import Lake
from cpvae_assets.storage.sql import query
from cpvae_assets.storage.tables import read_table

from .conftest import REAL_CP
from .helpers import failure_text, sha256

PLATE = "lincs_cp_plate"
PROJECT = Path(__file__).resolve().parent.parent
SMALL_DEMO = DemoConfig(n_single_moas=8, n_pairs=3, n_synergistic=1, compounds_per_moa=2, plate_maps=2,
                        dmso_per_plate_map=10, replicates=2, n_features=60)
ALL_CHECKS = {"required_metadata", "feature_count", "no_nonfinite_features", "split_proportions",
              "every_stratum_in_training"}


# --------------------------------------------------------------------------------------------- helpers


def resources(lake: Path) -> dict:
    return {"io_manager": LakeIOManager(root=str(lake)), "lake": LakeResource(root=str(lake)),
            "lincs_remote": LincsRemoteResource()}


def land_plate(lake: Path, dataset: str = PLATE) -> Path:
    target = lake / "landing" / dataset / REAL_CP.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REAL_CP, target)
    return target


def materialise(lake: Path, instance: dg.DagsterInstance, selection: list[str], dataset: str = PLATE,
                run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    if dataset not in instance.get_dynamic_partitions(dataset_partitions.name):
        instance.add_dynamic_partitions(dataset_partitions.name, [dataset])
    return dg.materialize(list(defs.assets), selection=selection, partition_key=dataset, instance=instance,
                          resources=resources(lake), run_config=run_config or {}, raise_on_error=False)


def part(lake: Path, asset: str, table: str = "data", dataset: str = PLATE) -> Path:
    return lake / asset / f"dataset={dataset}" / f"{table}.parquet"





def sensor_context(instance: dg.DagsterInstance, lake: Path, cursor: str | None = None):
    return dg.build_sensor_context(instance=instance, cursor=cursor, resources={"lake": LakeResource(root=str(lake))})


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


# --------------------------------------------------------------------------------------------- 1. definitions


def test_asset_keys_partitions_and_automation() -> None:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"raw_profiles", "normalised_splits", "remote_files", "tuned_hyperparameters", "trained_models",
                    "training_curves", "latent_embeddings", "generation_qc", "moa_groups", "moa_means",
                    "lsa_predictions", "lsa_distances", "shuffled_null", "lsa_zscores", "lsa_summary", "leave_moa_out",
                    "latent_traversal", "feature_group_contributions", "latent_correlation", "report"}
    assert {k.to_user_string() for a in defs.assets for k in a.keys} == keys
    for name in ("tuned_hyperparameters", "trained_models", "training_curves", "latent_embeddings", "generation_qc",
                 "moa_means", "lsa_predictions", "lsa_distances", "shuffled_null", "lsa_zscores",
                 "latent_traversal", "feature_group_contributions", "latent_correlation"):
        partitions = graph.get(dg.AssetKey(name)).partitions_def
        assert isinstance(partitions, dg.MultiPartitionsDefinition), name
        assert graph.get(dg.AssetKey(name)).automation_condition.get_label() == "eager"
    assert graph.get(dg.AssetKey("moa_groups")).partitions_def.name == "dataset"
    # the report of a dataset follows every model type's partition of it
    report = graph.get(dg.AssetKey("report"))
    assert report.partitions_def.name == "dataset" and report.automation_condition.get_label() == "eager"
    assert {k.to_user_string() for k in report.parent_keys} >= {"lsa_zscores", "feature_group_contributions",
                                                                "latent_correlation", "generation_qc", "training_curves"}
    assert graph.get(dg.AssetKey("lsa_summary")).partitions_def is None
    assert graph.get(dg.AssetKey("leave_moa_out")).automation_condition is None  # on demand: it retrains
    for name in ("raw_profiles", "normalised_splits"):
        partitions = graph.get(dg.AssetKey(name)).partitions_def
        assert isinstance(partitions, dg.DynamicPartitionsDefinition)
        assert partitions.name == "dataset"
    assert graph.get(dg.AssetKey("remote_files")).partitions_def is None
    condition = graph.get(dg.AssetKey("normalised_splits")).automation_condition
    assert condition is not None and condition.get_label() == "eager"
    assert graph.get(dg.AssetKey("raw_profiles")).automation_condition is None


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
    assert set(sensors) == {"landing_sensor", "cpvae_automation"}
    assert isinstance(sensors["cpvae_automation"], dg.AutomationConditionSensorDefinition)
    assert sensors["landing_sensor"].default_status == dg.DefaultSensorStatus.RUNNING
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
        cwd=PROJECT, capture_output=True, text=True, timeout=120, check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "False"


# --------------------------------------------------------------------------------------------- 2. end to end


def test_real_plate_end_to_end(lake: Path, instance: dg.DagsterInstance) -> None:
    land_plate(lake)
    result = materialise(lake, instance, ["raw_profiles", "normalised_splits"])
    assert result.success, failure_text(result)

    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == ALL_CHECKS
    assert all(e.passed for e in evaluations), [(e.check_name, e.description) for e in evaluations if not e.passed]

    assert part(lake, "raw_profiles").is_file()
    assert part(lake, "normalised_splits").is_file()
    assert part(lake, "normalised_splits", "scaler").is_file()

    counts = query(lake, "SELECT split, count(*) AS n FROM normalised_splits GROUP BY ALL")
    counts = dict(zip(counts["split"], counts["n"]))
    assert set(counts) == set(SPLITS)
    assert sum(counts.values()) == 384
    for split, fraction in zip(SPLITS, FRACTIONS):
        assert abs(counts[split] / 384 - fraction) <= 0.01, counts

    frame = read_table(part(lake, "normalised_splits"))
    scaler = read_table(part(lake, "normalised_splits", "scaler"))
    features = list(scaler["feature"])
    assert len(features) > 400 and set(features) <= set(frame.columns)
    train = frame.loc[frame["split"] == "train", features]
    varying = (scaler["data_max"] > scaler["data_min"]).to_numpy()
    assert varying.sum() > 0
    assert (train.min().to_numpy()[varying] == 0.0).all()
    assert (train.max().to_numpy()[varying] == 1.0).all()

    raw = result.asset_materializations_for_node("raw_profiles")[0].metadata
    assert raw["profiles"].value == 384
    assert raw["landing_sha256"].value
    splits = result.asset_materializations_for_node("normalised_splits")[0].metadata
    assert splits["seed"].value == 0
    assert splits["train_profiles"].value == counts["train"]
    assert str(splits["path"].value).endswith(f"normalised_splits/dataset={PLATE}")


def test_small_demo_config_end_to_end(lake: Path, instance: dg.DagsterInstance) -> None:
    out = generate_demo(lake / "landing", SMALL_DEMO)
    assert set(out) == {"demo_cp_level5", "demo_cp_level4", "demo_l1000"}
    result = materialise(lake, instance, ["raw_profiles", "normalised_splits"], dataset="demo_cp_level5")
    assert result.success, failure_text(result)
    assert all(e.passed for e in result.get_asset_check_evaluations())
    metadata = result.asset_materializations_for_node("raw_profiles")[0].metadata
    assert metadata["feature_count"].value == SMALL_DEMO.n_features


# --------------------------------------------------------------------------------------------- 3. reproducibility


def test_same_seed_same_split_other_seed_differs(lake: Path, instance: dg.DagsterInstance) -> None:
    land_plate(lake)
    assert materialise(lake, instance, ["raw_profiles", "normalised_splits"]).success
    first = read_table(part(lake, "normalised_splits"))
    first_scaler = read_table(part(lake, "normalised_splits", "scaler"))

    again = materialise(lake, instance, ["normalised_splits"])
    assert again.success, failure_text(again)
    pd.testing.assert_frame_equal(read_table(part(lake, "normalised_splits")), first)
    pd.testing.assert_frame_equal(read_table(part(lake, "normalised_splits", "scaler")), first_scaler)

    other = materialise(lake, instance, ["normalised_splits"],
                        run_config={"ops": {"normalised_splits": {"config": {"seed": 1}}}})
    assert other.success, failure_text(other)
    assert other.asset_materializations_for_node("normalised_splits")[0].metadata["seed"].value == 1
    second = read_table(part(lake, "normalised_splits"))
    assert set(second["profile_id"]) == set(first["profile_id"])
    by_id = first.set_index("profile_id")["split"]
    assert (second.set_index("profile_id")["split"].reindex(by_id.index) != by_id).any()
    assert all(e.passed for e in other.get_asset_check_evaluations())


# --------------------------------------------------------------------------------------------- 4./5. refusals


def test_feature_change_refused_unless_allowed(lake: Path, instance: dg.DagsterInstance) -> None:
    landed = land_plate(lake)
    assert materialise(lake, instance, ["raw_profiles"]).success
    stored = part(lake, "raw_profiles")
    before = sha256(stored)

    frame = pd.read_csv(landed, dtype={c: str for c in pd.read_csv(landed, nrows=0).columns if c.startswith("Metadata_")})
    gone = next(c for c in frame.columns if not c.startswith("Metadata_"))
    with gzip.open(landed, "wt") as handle:
        frame.drop(columns=[gone]).to_csv(handle, index=False)

    refused = materialise(lake, instance, ["raw_profiles"])
    assert not refused.success
    text = failure_text(refused)
    assert str(lake / "landing" / PLATE) in text
    assert "features" in text and gone in text
    assert "allow_feature_change" in text
    assert sha256(stored) == before

    allowed = materialise(lake, instance, ["raw_profiles"],
                          run_config={"ops": {"raw_profiles": {"config": {"allow_feature_change": True}}}})
    assert allowed.success, failure_text(allowed)
    assert sha256(stored) != before
    columns = read_table(stored).columns
    assert gone not in columns
    assert allowed.asset_materializations_for_node("raw_profiles")[0].metadata["landing_sha256"].value


def test_bad_file_fails_run_and_keeps_partition(lake: Path, instance: dg.DagsterInstance) -> None:
    land_plate(lake)
    assert materialise(lake, instance, ["raw_profiles", "normalised_splits"]).success
    raw_before = sha256(part(lake, "raw_profiles"))
    splits_before = sha256(part(lake, "normalised_splits"))

    (lake / "landing" / PLATE / "broken_extra.csv").write_bytes(b"")
    result = materialise(lake, instance, ["raw_profiles", "normalised_splits"])
    assert not result.success
    assert "broken_extra.csv" in failure_text(result)
    assert not result.asset_materializations_for_node("raw_profiles")
    assert sha256(part(lake, "raw_profiles")) == raw_before
    assert sha256(part(lake, "normalised_splits")) == splits_before


# --------------------------------------------------------------------------------------------- 6. sensor


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


def test_weekly_schedule_downloads_remote_files() -> None:
    schedule = next(s for s in defs.schedules if s.name == "weekly_remote_manifest_check")
    [request] = schedule.evaluate_tick(dg.build_schedule_context()).run_requests
    assert request.run_config["ops"]["remote_files"]["config"]["download"] is True
    assert not request.partition_key


# --------------------------------------------------------------------------------------------- 7. cli


def test_cli_sql(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cpvae_assets.cli import main

    assert main(["--lake", str(lake), "sql", "SELECT 1 AS one"]) == 0
    assert "one" in capsys.readouterr().out
    assert main(["--lake", str(lake), "sql", "DROP VIEW x"]) == 2


def test_cli_sql_after_materialisation(lake: Path, instance: dg.DagsterInstance,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from cpvae_assets.cli import main

    land_plate(lake)
    assert materialise(lake, instance, ["raw_profiles", "normalised_splits"]).success
    capsys.readouterr()
    assert main(["--lake", str(lake), "sql", "SELECT count(*) AS n FROM raw_profiles"]) == 0
    assert "384" in capsys.readouterr().out
    scaler_rows = query(lake, "SELECT count(*) AS n FROM normalised_splits_scaler")["n"][0]
    assert scaler_rows == len(read_table(part(lake, "normalised_splits", "scaler")))
