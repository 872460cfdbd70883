"""Atomic Parquet storage: round trip with metadata, a failed write keeps the previous file and leaves
no temporary file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from cpvae_assets.storage.paths import DATA_FILE, partition_dir, table_file
from cpvae_assets.storage.tables import atomic_path, column_names, commit_tables, read_metadata, read_table, write_table
from cpvae_assets_tests.support.lake_tables import hidden_files, profiles

# --------------------------------------------------------------------------- Parquet storage


def test_write_read_round_trip_with_metadata(lake: Path) -> None:
    frame = profiles(7, ["f1", "f2"])
    frame["dose"] = [0.1, 1.0, 10.0, np.nan, 3.0, 1.0, 2.0]
    target = table_file(partition_dir(lake, "raw_profiles", "a"))
    meta = {"rows": 7, "features": ["f1", "f2"], "source": Path("/x/y.csv"), "nested": {"k": 1.5}}

    assert write_table(frame, target, meta) == target

    back = read_table(target)
    pd.testing.assert_frame_equal(back, frame)
    assert read_table(target, columns=["f2"]).columns.tolist() == ["f2"]
    assert read_metadata(target) == {"rows": 7, "features": ["f1", "f2"], "source": "/x/y.csv", "nested": {"k": 1.5}}
    assert column_names(target) == frame.columns.tolist()
    assert hidden_files(target.parent) == []


def test_read_metadata_of_plain_file_is_empty(lake: Path) -> None:
    target = lake / "t" / DATA_FILE
    write_table(profiles(2, ["f"]), target)
    assert read_metadata(target) == {}


def test_failed_write_keeps_previous_file_and_leaves_no_tmp(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = table_file(partition_dir(lake, "raw_profiles", "a"))
    old = profiles(5, ["f1"], seed=1)
    write_table(old, target, {"version": 1})
    seen: list[Path] = []

    def broken_write_table(table, where, **kwargs):
        seen.append(Path(where))
        with open(where, "wb") as handle:
            handle.write(b"PAR1\x00\x01half")  # a torn file
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken_write_table)
    with pytest.raises(OSError, match="disk full"):
        write_table(profiles(9, ["f1", "f9"]), target, {"version": 2})

    # the writer used a hidden file beside the target, never the target itself
    assert len(seen) == 1 and seen[0].parent == target.parent and seen[0].name.startswith(".")
    assert seen[0] != target
    monkeypatch.undo()
    pd.testing.assert_frame_equal(read_table(target), old)
    assert read_metadata(target) == {"version": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == [DATA_FILE]


def test_atomic_path_failure_without_previous_file_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "file.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("boom")
    assert list(target.parent.iterdir()) == []

    with atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert list(target.parent.iterdir()) == [target]


def test_a_partition_commits_its_figures_with_its_tables(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Figures are staged and renamed with the tables: a failed write keeps the old PNG and tables;
    a figure the new version does not have is removed."""
    folder = partition_dir(lake, "generation_qc", "a")
    old = {"data": profiles(3, ["f1"], seed=1), "umap": profiles(4, ["f2"], seed=2)}
    commit_tables(folder, old, {"version": 1}, {"umap": b"\x89PNG old", "extra": b"\x89PNG gone soon"})
    assert sorted(p.name for p in folder.iterdir()) == [DATA_FILE, "extra.png", "umap.parquet", "umap.png"]

    def broken(table, where, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        commit_tables(folder, {"data": profiles(9, ["f1"])}, {"version": 2}, {"umap": b"\x89PNG new"})
    monkeypatch.undo()
    assert (folder / "umap.png").read_bytes() == b"\x89PNG old" and (folder / "extra.png").is_file()
    pd.testing.assert_frame_equal(read_table(table_file(folder)), old["data"])
    assert hidden_files(folder) == []

    commit_tables(folder, {"data": profiles(2, ["f1"])}, {"version": 3}, {"umap": b"\x89PNG new"})
    assert (folder / "umap.png").read_bytes() == b"\x89PNG new" and not (folder / "extra.png").exists()
    assert hidden_files(folder) == []
    with pytest.raises(ValueError, match="figure name"):
        commit_tables(folder, {"data": profiles(2, ["f1"])}, {}, {"../escape": b"x"})
