"""The storage layer on a non-local fsspec filesystem (``memory://``): no code in it assumes a local
disk. Partition paths, atomic writes (temporary key, then move), reads, metadata, failures and the
catalog; and the same Parquet bytes as a local lake."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest

from cpvae_assets.storage.catalog import discover_tables, rebuild_catalog
from cpvae_assets.storage.paths import DATA_FILE, LAKE_ENV, UnsafePathError, is_remote, lake_root, partition_dir, table_file
from cpvae_assets.storage.tables import (
    atomic_path,
    column_names,
    read_metadata,
    read_table,
    replace,
    write_table,
)


@pytest.fixture
def memory_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A lake root on fsspec's in-memory filesystem; the working directory is an empty folder, so a
    path that fell back to the local disk (``memory:/...`` relative to it) would show up there."""
    root = f"memory://cpvae-{uuid.uuid4().hex}/lake"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield lake_root(root)
    assert list(cwd.iterdir()) == [], "the storage layer wrote to the local disk"
    fs, bucket = fsspec.filesystem("memory"), "/" + root.removeprefix("memory://").split("/")[0]
    if fs.exists(bucket):
        fs.rm(bucket, recursive=True)


def frame(n: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"profile_id": [f"p{i}" for i in range(n)], "split": ["train"] * n,
                         "f1": rng.random(n, dtype=np.float32), "f2": rng.random(n, dtype=np.float32)})


def listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_lake_root_url_is_a_upath_on_that_filesystem(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = lake_root("memory://bucket/lake")
    assert is_remote(root) and root.protocol == "memory" and str(root) == "memory://bucket/lake"
    monkeypatch.setenv(LAKE_ENV, "memory://bucket/other")
    assert str(lake_root()) == "memory://bucket/other"
    # local roots stay plain resolved paths, file:// included
    assert lake_root(str(tmp_path)) == tmp_path.resolve() and type(lake_root(str(tmp_path))) is type(tmp_path)
    assert lake_root(f"file://{tmp_path}") == tmp_path.resolve()
    assert not is_remote(lake_root(str(tmp_path)))


def test_partition_paths_on_a_url(memory_lake) -> None:
    path = partition_dir(memory_lake, "trained_models", "demo_cp_level5", "beta")
    assert str(path) == f"{memory_lake}/trained_models/dataset=demo_cp_level5/model_type=beta"
    with pytest.raises(UnsafePathError):
        partition_dir(memory_lake, "trained_models", "../escape")


def test_write_and_read_tables_through_fsspec(memory_lake) -> None:
    folder = partition_dir(memory_lake, "normalised_splits", "ds")
    expected = frame()
    target = write_table(expected, folder / DATA_FILE, {"run_id": "r1", "asset": "normalised_splits"})
    assert target.exists() and listing(folder) == [DATA_FILE]  # no temporary key left
    pd.testing.assert_frame_equal(read_table(target), expected)
    pd.testing.assert_frame_equal(read_table(target, columns=["profile_id", "f2"]), expected[["profile_id", "f2"]])
    assert read_metadata(target) == {"run_id": "r1", "asset": "normalised_splits"}
    assert column_names(target) == list(expected.columns)
    # overwrite: the new version replaces the old one whole
    write_table(frame(seed=1), target)
    pd.testing.assert_frame_equal(read_table(target), frame(seed=1))
    assert listing(folder) == [DATA_FILE]


def test_failed_write_leaves_the_old_table_and_no_temporary_key(memory_lake) -> None:
    target = table_file(partition_dir(memory_lake, "raw_profiles", "ds"))
    write_table(frame(), target)
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="writer failed"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a parquet file")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == before and listing(target.parent) == [DATA_FILE]
    assert not tmp.exists()  # the local temporary file is gone too


def test_atomic_path_gives_writers_a_local_file_with_the_suffix(memory_lake) -> None:
    """Keras, AnnData and numpy writers need a real file name ending in their suffix."""
    target = memory_lake / "trained_models" / "dataset=ds" / "model_type=pca" / "pca.npz"
    with atomic_path(target) as tmp:
        assert isinstance(tmp, Path) and tmp.suffix == ".npz" and not is_remote(tmp)
        with open(tmp, "wb") as handle:
            np.savez(handle, components=np.eye(3))
    with target.open("rb") as handle, np.load(handle) as data:
        np.testing.assert_array_equal(data["components"], np.eye(3))


def test_replace_moves_a_staged_file_into_place(memory_lake) -> None:
    folder = memory_lake / "moa_means" / "dataset=ds"
    staged = write_table(frame(), folder / ".staged-x-data.parquet")
    replace(staged, folder / DATA_FILE)
    assert listing(folder) == [DATA_FILE]
    pd.testing.assert_frame_equal(read_table(folder / DATA_FILE), frame())


def test_same_bytes_as_a_local_lake(memory_lake, lake: Path) -> None:
    metadata = {"asset": "raw_profiles", "partition": "ds"}
    local = write_table(frame(), table_file(partition_dir(lake, "raw_profiles", "ds")), metadata)
    remote = write_table(frame(), table_file(partition_dir(memory_lake, "raw_profiles", "ds")), metadata)
    assert remote.read_bytes() == local.read_bytes()


def test_catalog_is_local_only(memory_lake, lake: Path) -> None:
    write_table(frame(), table_file(partition_dir(memory_lake, "raw_profiles", "ds")))
    assert rebuild_catalog(memory_lake) is None
    assert discover_tables(memory_lake) == {
        "raw_profiles": f"{memory_lake / 'raw_profiles'}/*/data.parquet"}
    # the local lake keeps its catalog
    write_table(frame(), table_file(partition_dir(lake, "raw_profiles", "ds")))
    assert rebuild_catalog(lake) == lake / "cpvae.duckdb" and os.path.isfile(lake / "cpvae.duckdb")


def test_io_manager_materialises_partitions_on_a_url(memory_lake) -> None:
    """Two partitioned assets through Dagster with the lake on memory://: stored, loaded downstream."""
    import dagster as dg

    from cpvae_assets.orchestration.io_manager import LakeIOManager
    from cpvae_assets.orchestration.partitions import dataset_partitions

    @dg.asset(name="raw_profiles", partitions_def=dataset_partitions)
    def raw() -> pd.DataFrame:
        return frame()

    @dg.asset(name="normalised_splits", partitions_def=dataset_partitions)
    def splits(raw_profiles: pd.DataFrame) -> pd.DataFrame:
        return raw_profiles.assign(f1=raw_profiles["f1"] * 2)

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(dataset_partitions.name, ["ds"])
        result = dg.materialize([raw, splits], partition_key="ds", instance=instance,
                                resources={"io_manager": LakeIOManager(root=str(memory_lake))})
    assert result.success
    stored = read_table(table_file(partition_dir(memory_lake, "normalised_splits", "ds")))
    pd.testing.assert_frame_equal(stored, frame().assign(f1=frame()["f1"] * 2))
    assert listing(partition_dir(memory_lake, "raw_profiles", "ds")) == [DATA_FILE]
