"""The per-dataset assets of one dataset materialised in process on a test lake (the real plate
landed under a dataset name), and the paths of their partitions; shared by the defs and CLI tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from cpvae_assets.definitions import defs
from cpvae_assets.orchestration.io_manager import LakeIOManager
from cpvae_assets.orchestration.partitions import dataset_partitions
from cpvae_assets.orchestration.resources import LakeResource, LincsRemoteResource
from cpvae_assets_tests.support.real_data import REAL_CP

PLATE = "lincs_cp_plate"


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
