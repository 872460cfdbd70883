"""The ``Lake`` API: the one way code reaches tables, partitions and landing folders."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cpvae_assets.storage.lake import Lake, MissingTable
from cpvae_assets.storage.paths import DATA_FILE, UnsafePathError
from cpvae_assets.storage.tables import write_table


def test_paths_follow_the_hive_layout(lake: Path) -> None:
    store = Lake(lake)
    assert store.path("lsa_zscores", "ds", "beta") == lake / "lsa_zscores" / "dataset=ds" / "model_type=beta" / DATA_FILE
    assert store.path("normalised_splits", "ds", table="scaler").name == "scaler.parquet"
    assert store.folder("lsa_summary") == lake / "lsa_summary"
    assert store.catalog == lake / "cpvae.duckdb"
    with pytest.raises(UnsafePathError):
        store.path("raw_profiles", "../etc")
    with pytest.raises(UnsafePathError):
        store.path("raw_profiles", "ds", table="../x")


def test_missing_tables_say_what_to_materialise(lake: Path) -> None:
    store = Lake(lake)
    assert not store.has("raw_profiles", "ds")
    with pytest.raises(MissingTable, match=r"raw_profiles is not materialised for ds yet \(make demo"):
        store.table("raw_profiles", "ds")
    with pytest.raises(MissingTable, match=r"normalised_splits \(scaler\) is not materialised for ds/beta"):
        store.columns("normalised_splits", "ds", "beta", table="scaler")


def test_tables_columns_metadata_and_stacked_partitions(lake: Path) -> None:
    store = Lake(lake)
    for dataset, model_type, n in (("a", "beta", 2), ("b", "beta", 3), ("b", "pca", 1)):
        write_table(pd.DataFrame({"pair": [f"p{i}" for i in range(n)], "l2": range(n)}),
                    store.path("lsa_zscores", dataset, model_type), {"config": {"seed": n}})
    write_table(pd.DataFrame({"x": [1]}), store.folder("lsa_zscores", "a", "beta") / ".hidden.parquet")
    assert store.has("lsa_zscores", "b", "pca")
    assert store.table("lsa_zscores", "a", "beta")["pair"].tolist() == ["p0", "p1"]
    assert store.columns("lsa_zscores", "a", "beta") == ["pair", "l2"]
    assert store.metadata("lsa_zscores", "b", "beta")["config"] == {"seed": 3}
    assert store.partitions("lsa_zscores") == [{"dataset": "a", "model_type": "beta"}, {"dataset": "b", "model_type": "beta"},
                                               {"dataset": "b", "model_type": "pca"}]
    stacked = store.stacked("lsa_zscores")
    assert list(stacked.columns) == ["dataset", "model_type", "pair", "l2"] and len(stacked) == 6
    assert stacked.groupby(["dataset", "model_type"]).size().to_dict() == {("a", "beta"): 2, ("b", "beta"): 3, ("b", "pca"): 1}
    assert store.stacked("no_such_asset").empty


def test_landing_refuses_a_symlink_out_of_the_lake(lake: Path, tmp_path: Path) -> None:
    (lake / "landing").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (lake / "landing" / "evil").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="outside"):
        Lake(lake).landing("evil")
    assert Lake(lake).landing("fine") == lake / "landing" / "fine"
