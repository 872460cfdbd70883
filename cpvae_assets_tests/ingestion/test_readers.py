"""Ingest of the real LINCS plates and of every file format. pycytominer-style: tiny synthetic profile
frames (``support/profiles.py``) are written in each format and read back through ``ingest_dataset``;
the real shipped plates are checked against an independent parse."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cpvae_assets.ingestion.moa_join import join_key
from cpvae_assets.ingestion.registry import dataset_spec
from cpvae_assets.ingestion.validate import Ingested, ingest_dataset
from cpvae_assets.schema import CONTROL_LABEL, NO_MOA, pair_key
from cpvae_assets_tests.support.profiles import FEATURES, FORMATS, META, SPEC, cp_frame, write_profiles
from cpvae_assets_tests.support.real_data import REAL_CONSENSUS, REAL_CONSENSUS_MOA, REAL_CP, REAL_L1000

# --------------------------------------------------------------------------- real files


def test_real_cell_painting_plate_ingested_unchanged(landing: Path) -> None:
    shutil.copy(REAL_CP, landing)
    result = ingest_dataset(landing, dataset_spec("lincs_cp_plate"))
    profiles = result.profiles

    assert isinstance(result, Ingested)
    assert profiles.shape[0] == 384
    assert len(result.features) == 454
    assert int(profiles["is_control"].sum()) == 24
    assert set(profiles["stratum"]) == {"SQ00015054"}
    assert result.files == [REAL_CP.name]
    assert result.dropped_features == []
    assert result.feature_info is None

    # feature values and metadata are exactly what the file holds
    raw = pd.read_csv(REAL_CP, low_memory=False)
    raw_features = [c for c in raw.columns if not c.startswith("Metadata_")]
    assert result.features == raw_features
    np.testing.assert_array_equal(profiles[raw_features].to_numpy(), raw[raw_features].to_numpy(dtype=float))
    assert profiles["Metadata_broad_sample"].fillna("").tolist() == raw["Metadata_broad_sample"].fillna("").tolist()

    controls = profiles[profiles["is_control"]]
    assert set(controls["moa"]) == {CONTROL_LABEL}
    assert (controls["dose"] == 0.0).all()
    treated = profiles[~profiles["is_control"]]
    assert treated["moa"].notna().any()
    assert treated["moa"].str.contains("|", regex=False).any()


def _independent_gct_parse(path: Path) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Genes x samples values and column metadata read with plain pandas, not cpvae's reader."""
    table = pd.read_csv(path, sep="\t", skiprows=2, header=0, dtype=str, keep_default_na=False)
    with gzip.open(path, "rt") as handle:
        handle.readline()
        n_rows, n_cols, n_rmeta, n_cmeta = map(int, handle.readline().split("\t"))
    samples = table.columns[1 + n_rmeta:]
    assert len(samples) == n_cols
    col_meta = {row["id"]: row[samples].tolist() for _, row in table.iloc[:n_cmeta].iterrows()}
    body = table.iloc[n_cmeta:]
    assert len(body) == n_rows
    values = body.set_index("id")[samples].astype(float).T
    return values, col_meta


def test_real_l1000_plate_ingested_with_moa_join(landing: Path) -> None:
    shutil.copy(REAL_L1000, landing)
    spec = dataset_spec("l1000_ljp005")
    result = ingest_dataset(landing, spec)
    profiles = result.profiles

    assert profiles.shape[0] == 377
    assert len(result.features) == 978
    assert int(profiles["is_control"].sum()) == 26
    assert set(profiles.loc[profiles["is_control"], "moa"]) == {CONTROL_LABEL}
    assert set(profiles["stratum"]) == {"A375"}

    values, col_meta = _independent_gct_parse(REAL_L1000)
    assert profiles["profile_id"].tolist() == list(values.index)
    np.testing.assert_array_equal(profiles[list(values.columns)].to_numpy(), values.to_numpy())
    assert profiles["Metadata_pert_iname"].tolist() == col_meta["pert_iname"]

    # MOA comes from the Repurposing Hub table, joined by pert_iname without regard to case, spaces or
    # hyphens (the plate writes "CYT387" and "AZD-8330", the Hub "cyt387" and "azd8330")
    hub = pd.read_csv(spec.moa_table_path(), sep="\t", dtype=str).dropna(subset=["pert_iname", "moa"])
    hub = hub.assign(key=hub["pert_iname"].map(join_key)).drop_duplicates(subset=["key"]).set_index("key")["moa"]
    treated = profiles[~profiles["is_control"]]
    keys = treated["Metadata_pert_iname"].map(join_key)
    known = treated[keys.isin(hub.index)]
    assert len(known) > 0
    for iname, moa in known[["Metadata_pert_iname", "moa"]].drop_duplicates().itertuples(index=False):
        assert moa == hub[join_key(iname)], iname
    assert treated.loc[treated["Metadata_pert_iname"] == "trametinib", "moa"].eq("MEK inhibitor").all()
    azd = treated["Metadata_pert_iname"] == "AZD-8330"  # the Hub: "AZD8330"
    assert azd.any() and treated.loc[azd, "moa"].eq("MEK inhibitor").all()
    assert treated["moa"].dropna().str.contains("|", regex=False).any()
    # names the hub does not know stay unlabelled, they are not invented
    unknown = treated[~keys.isin(hub.index)]
    assert len(unknown) > 0 and unknown["moa"].isna().all()
    assert result.moa_join.matched == len(known) and result.moa_join.profiles == len(treated)
    # -666 (cmap's "not applicable") is the DMSO dose; controls get 0, treated keep their real dose
    assert (profiles.loc[profiles["is_control"], "dose"] == 0.0).all()
    assert treated["dose"].notna().all() and (treated["dose"] > 0).all()

    info = result.feature_info
    assert info is not None and len(info) == 978
    assert "pr_gene_symbol" in info.columns
    assert info["feature"].tolist() == result.features


def test_real_l1000_consensus_ingested_end_to_end(landing: Path) -> None:
    """Tab-separated, gzipped, an unprefixed ID column, Entrez gene IDs as columns, no dose, no plate,
    no controls, MOA joined by DrugBank ID from a table under the package's real/ folder."""
    shutil.copy(REAL_CONSENSUS, landing)
    spec = dataset_spec("l1000_consensus")
    result = ingest_dataset(landing, spec)
    profiles = result.profiles

    raw = pd.read_csv(REAL_CONSENSUS, sep="\t")  # an independent read
    assert raw.shape == (1170, 979) and profiles.shape[0] == 1170
    assert result.features == list(raw.columns[1:]) and len(result.features) == 978
    assert all(f.isdigit() for f in result.features)
    np.testing.assert_array_equal(profiles[result.features].to_numpy(), raw.iloc[:, 1:].to_numpy())
    assert "perturbagen" not in profiles.columns
    assert profiles["Metadata_perturbagen"].tolist() == profiles["compound"].tolist() == raw["perturbagen"].tolist()

    assert not profiles["is_control"].any() and profiles["dose"].isna().all()
    table = pd.read_csv(REAL_CONSENSUS_MOA, sep="\t", dtype=str, keep_default_na=False).set_index("drugbank_id")
    expected = table["moa"].reindex(raw["perturbagen"]).replace("", np.nan)
    assert profiles["moa"].tolist() == [m if isinstance(m, str) else pd.NA for m in expected]
    joined = result.moa_join
    assert (joined.profiles, joined.in_table, joined.matched) == (1170, 1170, 1044)
    assert len(joined.unmatched) == 10 and all(table.loc[d, "moa"] == "" for d in joined.unmatched)
    assert int(profiles["moa"].str.contains("|", regex=False).sum()) == 133  # 108 with two MOAs, 25 with more

    # no plate or cell line: the MOA group is the stratum
    assert profiles["stratum"].value_counts()[NO_MOA] == 126
    two = profiles["moa"].str.count(r"\|").eq(1).fillna(False)
    assert profiles.loc[two, "stratum"].tolist() == [pair_key(m) for m in profiles.loc[two, "moa"]]


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("suffix", FORMATS)
def test_every_format_reads_back_the_same_profiles(landing: Path, suffix: str) -> None:
    frame = cp_frame()
    write_profiles(frame, landing / f"plate{suffix}")
    result = ingest_dataset(landing, SPEC)
    profiles = result.profiles

    assert result.features == FEATURES
    assert profiles[FEATURES].dtypes.eq(np.float64).all()
    np.testing.assert_array_equal(profiles[FEATURES].to_numpy(), frame[FEATURES].to_numpy())
    assert profiles["compound"].tolist() == frame["Metadata_broad_sample"].tolist()
    assert profiles["is_control"].tolist() == [True, True] + [False] * 6
    assert profiles["moa"].tolist() == [CONTROL_LABEL] * 2 + frame["Metadata_moa"].tolist()[2:]
    assert profiles["dose"].tolist() == [0.0, 0.0] + [float(d) for d in frame["Metadata_mmoles_per_liter"][2:]]
    assert set(profiles["stratum"]) == {"SQ00000001"}
    assert profiles["source_file"].eq(f"plate{suffix}").all()
    assert profiles["profile_id"].is_unique
    if suffix in (".gct", ".gctx"):
        assert result.feature_info is not None
        assert result.feature_info["feature"].tolist() == FEATURES
        assert profiles["profile_id"].tolist() == [f"S{i:03d}" for i in range(len(frame))]
    else:
        assert result.feature_info is None


def test_files_of_one_dataset_are_stacked_across_formats(landing: Path) -> None:
    first, second = cp_frame(seed=1), cp_frame(seed=2)
    write_profiles(first, landing / "a.csv")
    write_profiles(second[["Metadata_Plate"] + META[:3] + FEATURES[::-1]], landing / "b.parquet")
    (landing / "README.txt").write_text("not a profile file")
    (landing / ".hidden.csv").write_text("ignored")
    (landing / "c.csv.part").write_text("download in progress")

    result = ingest_dataset(landing, SPEC)
    assert result.files == ["a.csv", "b.parquet"]
    assert len(result.profiles) == 16
    expected = np.vstack([first[FEATURES].to_numpy(), second[FEATURES].to_numpy()])
    np.testing.assert_array_equal(result.profiles[result.features].to_numpy(), expected)
    assert result.profiles["source_file"].tolist() == ["a.csv"] * 8 + ["b.parquet"] * 8
