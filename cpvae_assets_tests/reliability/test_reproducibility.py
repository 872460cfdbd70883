"""Reproducibility: the same inputs, seeds and code give byte-identical Parquet files, and every file
(and its Dagster materialisation) records the code version, the sha256 of its inputs and its config."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from cpvae_assets.definitions import defs
from cpvae_assets.ingestion.demo_data import DemoConfig, generate_demo
from cpvae_assets.orchestration.io_manager import LakeIOManager
from cpvae_assets.orchestration.resources import LakeResource, LincsRemoteResource
from cpvae_assets.storage.hashing import sha256_of
from cpvae_assets.storage.paths import DATA_FILE
from cpvae_assets.storage.tables import read_metadata
from cpvae_assets.storage.version import code_version
from cpvae_assets_tests.support.helpers import failure_text
from cpvae_assets_tests.support.reliability_support import tree

DATASET = "demo_cp_level5"
SMALL = DemoConfig(n_single_moas=8, n_pairs=3, n_synergistic=1, compounds_per_moa=2, plate_maps=2,
                   dmso_per_plate_map=10, replicates=2, n_features=60)
ASSETS = ["raw_profiles", "normalised_splits", "moa_groups"]


def materialise(lake: Path, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    resources = {"io_manager": LakeIOManager(root=str(lake)), "lake": LakeResource(root=str(lake)),
                 "lincs_remote": LincsRemoteResource()}
    result = dg.materialize(list(defs.assets), selection=ASSETS, partition_key=DATASET, instance=instance,
                            resources=resources, raise_on_error=False)
    assert result.success, failure_text(result)
    return result


def test_two_lakes_from_the_same_inputs_are_byte_identical(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    generate_demo(first / "landing", SMALL)
    shutil.copytree(first / "landing" / DATASET, second / "landing" / DATASET)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("dataset", [DATASET])
        runs = [materialise(lake, instance) for lake in (first, second)]

    tables = {k: v for k, v in tree(first, skip=("landing", "dagster_home")).items() if k.endswith(".parquet")}
    assert {k.split("/")[0] for k in tables} == set(ASSETS)
    assert len(tables) == 5  # raw data; splits data + scaler; groups data + membership
    assert tables == {k: v for k, v in tree(second, skip=("landing", "dagster_home")).items() if k.endswith(".parquet")}

    # what each file records: code version, the sha256 of what it was computed from, the config
    part = f"dataset={DATASET}"
    raw, splits, groups = (first / asset / part / DATA_FILE for asset in ASSETS)
    landing = sorted(p for p in (first / "landing" / DATASET).iterdir() if p.is_file() and p.suffix != ".toml")
    assert read_metadata(raw)["inputs"] == {f"landing/{DATASET}/{p.name}": sha256_of(p) for p in landing}
    assert read_metadata(splits)["inputs"] == {f"raw_profiles/{part}": sha256_of(raw)}
    assert read_metadata(splits)["config"] == {"seed": 0}
    assert read_metadata(groups)["inputs"] == {f"normalised_splits/{part}": sha256_of(splits)}
    for path in (raw, splits, groups):
        meta = read_metadata(path)
        assert meta["code_version"] == code_version() and meta["partition"] == DATASET
        assert "run_id" not in meta

    # the Dagster materialisations carry the same, plus the files' own sha256 (the run id is Dagster's)
    for run in runs:
        recorded = {m.asset_key.to_user_string(): m.metadata
                    for node in ASSETS for m in run.asset_materializations_for_node(node)}
        assert recorded["normalised_splits"]["config"].value == {"seed": 0}
        assert recorded["normalised_splits"]["inputs_sha256"].value == {f"raw_profiles/{part}": sha256_of(raw)}
        assert recorded["moa_groups"]["files_sha256"].value[DATA_FILE] == sha256_of(groups)
        assert recorded["raw_profiles"]["code_version"].value == code_version()
    assert runs[0].run_id != runs[1].run_id


def test_code_version_names_the_package_and_commit() -> None:
    version = code_version()
    assert version.split("+")[0] == "0.1.0" or version.startswith("0.")
    if (Path(__file__).resolve().parents[2] / ".git").exists():
        assert "+g" in version and len(version.split("+g")[1].split(".")[0]) == 12
