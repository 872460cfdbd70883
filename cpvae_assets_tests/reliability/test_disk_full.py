"""A full disk during a Keras model write: the run fails with one error that names the disk, the old
model pair stays whole and loadable, and nothing half-written is left (the lake is a small tmpfs)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from cpvae_assets.definitions import defs
from cpvae_assets.models.store import ModelStore
from cpvae_assets.orchestration.io_manager import LakeIOManager
from cpvae_assets.orchestration.resources import LakeResource, LincsRemoteResource
from cpvae_assets.storage.hashing import sha256_of
from cpvae_assets.storage.lake import Lake
from cpvae_assets_tests.support.daemon import REAL_CP_PLATE
from cpvae_assets_tests.support.helpers import failure_text
from cpvae_assets_tests.support.reliability_support import fill_disk, tmpfs

DATASET = "lincs_cp_plate"
FAST = {"tuned_hyperparameters": {"config": {"trials": 0}},
        "trained_models": {"config": {"epochs": 3, "patience": 3, "n_seeds": 1}}}


@pytest.fixture
def tmpfs_lake(tmp_path: Path):
    with tmpfs(tmp_path / "lake", "24m") as lake:
        yield lake


def test_keras_write_on_a_full_disk(tmpfs_lake: Path, tmp_path: Path) -> None:
    import pandas as pd

    landing = tmpfs_lake / "landing" / DATASET
    landing.mkdir(parents=True)
    pd.read_csv(REAL_CP_PLATE, dtype=str).head(120).to_csv(landing / "plate.csv", index=False)
    resources = {"io_manager": LakeIOManager(root=str(tmpfs_lake)), "lake": LakeResource(root=str(tmpfs_lake)),
                 "lincs_remote": LincsRemoteResource()}
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("dataset", [DATASET])
        assert dg.materialize(list(defs.assets), selection=["raw_profiles", "normalised_splits"], partition_key=DATASET,
                              instance=instance, resources=resources).success
        key = dg.MultiPartitionKey({"dataset": DATASET, "model_type": "beta"})
        first = dg.materialize(list(defs.assets), selection=["tuned_hyperparameters", "trained_models", "training_curves"],
                               partition_key=key, instance=instance, resources=resources, run_config={"ops": FAST})
        assert first.success, failure_text(first)
        store = ModelStore(Lake(tmpfs_lake))
        folder = store.folder(DATASET, "beta")
        before = {p.name: sha256_of(p) for p in folder.iterdir() if p.is_file()}
        fill_disk(tmpfs_lake)  # a few kilobytes left: less than one .keras file
        config = {"ops": {"trained_models": {"config": {**FAST["trained_models"]["config"], "seed": 7}}}}
        again = dg.materialize(list(defs.assets), selection=["trained_models", "training_curves"], partition_key=key,
                               instance=instance, resources=resources, run_config=config, raise_on_error=False)
    assert not again.success
    text = failure_text(again)
    assert f"the disk holding {folder}" in text and "MB free) is full" in text and "previous version is kept" in text, text
    assert {p.name: sha256_of(p) for p in folder.iterdir() if p.is_file()} == before  # the old pair, whole
    model = store.load(DATASET, "beta")
    n_features = int(model.encoder.inputs[0].shape[-1])
    assert np.isfinite(model.encode(np.full((2, n_features), 0.5, np.float32))).all()  # it loads and encodes
    assert not [p for p in folder.rglob(".*")]  # no temporary file left behind
