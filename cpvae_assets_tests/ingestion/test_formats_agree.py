"""One real L1000 plate written as GCT, GCTX, CSV and Parquet reads back with the same columns and
the same column types: numeric metadata is numbers wherever every value parses as one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cpvae_assets.ingestion.demo_data import write_gctx
from cpvae_assets.ingestion.readers import numeric_metadata, read_profiles
from cpvae_assets.schema import META_PREFIX, feature_columns
from cpvae_assets_tests.support.real_data import REAL_L1000

ID = f"{META_PREFIX}sample_id"


@pytest.fixture(scope="module")
def plate() -> pd.DataFrame:
    frame, _ = read_profiles(REAL_L1000)
    return frame.head(40)


def _gct(frame: pd.DataFrame, path: Path) -> None:
    meta = [c for c in frame.columns if c.startswith(META_PREFIX) and c != ID]
    features = feature_columns(frame)
    lines = ["#1.3", f"{len(features)}\t{len(frame)}\t0\t{len(meta)}", "\t".join(["id", *frame[ID]])]
    lines += ["\t".join([c.removeprefix(META_PREFIX), *("" if pd.isna(v) else str(v) for v in frame[c])]) for c in meta]
    lines += ["\t".join([f, *(repr(float(v)) for v in frame[f])]) for f in features]
    path.write_text("\n".join(lines) + "\n")


def _gctx(frame: pd.DataFrame, path: Path) -> None:
    """cmapPy's layout: numeric metadata stored as numbers, text as bytes."""
    samples = pd.DataFrame({c.removeprefix(META_PREFIX): frame[c].to_numpy() for c in frame.columns
                            if c.startswith(META_PREFIX)})
    samples["values"] = list(frame[feature_columns(frame)].to_numpy(np.float32))
    write_gctx(path, samples, pd.DataFrame({"feature": feature_columns(frame)}))


def test_every_format_gives_the_same_types(plate: pd.DataFrame, tmp_path: Path) -> None:
    paths = {"gct": tmp_path / "p.gct", "gctx": tmp_path / "p.gctx", "csv": tmp_path / "p.csv",
             "parquet": tmp_path / "p.parquet"}
    _gct(plate, paths["gct"])
    _gctx(plate, paths["gctx"])
    plate.to_csv(paths["csv"], index=False)
    plate.to_parquet(paths["parquet"], index=False)
    read = {fmt: read_profiles(path)[0] for fmt, path in paths.items()}
    meta = [c for c in read["gct"].columns if c.startswith(META_PREFIX)]
    for fmt, frame in read.items():
        assert sorted(frame.columns) == sorted(read["gct"].columns), fmt  # GCTX stores metadata in its own order
        assert frame[meta].dtypes.to_dict() == read["gct"][meta].dtypes.to_dict(), fmt
        np.testing.assert_allclose(frame[feature_columns(frame)].to_numpy(np.float64),
                                   read["gct"][feature_columns(frame)].to_numpy(np.float64), rtol=1e-6)
    dtypes = read["gct"].dtypes
    assert dtypes["Metadata_qc_iqr"] == np.float64 and dtypes["Metadata_pert_time"] == np.int64
    assert dtypes["Metadata_pert_iname"] == object and dtypes[ID] == object


def test_numeric_metadata_rules() -> None:
    frame = pd.DataFrame({"Metadata_dose": ["10", "0.5", "-666"], "Metadata_count": ["1", "2", ""],
                          "Metadata_well": ["007", "008", "009"], "Metadata_name": ["a", "1", "2"],
                          "Metadata_plate": ["1", "2", "3"], "feature_a": ["1", "2", "3"]})
    out = numeric_metadata(frame)
    assert out["Metadata_dose"].tolist() == [10.0, 0.5, -666.0] and out["Metadata_dose"].dtype == np.float64
    assert out["Metadata_count"].dtype == np.float64 and np.isnan(out["Metadata_count"].iloc[2])  # a gap: float
    assert out["Metadata_plate"].dtype == np.int64
    assert out["Metadata_well"].tolist() == ["007", "008", "009"]  # identifiers with leading zeros stay text
    assert out["Metadata_name"].tolist() == ["a", "1", "2"]
    assert out["feature_a"].tolist() == ["1", "2", "3"]  # features are not metadata: validation handles them
