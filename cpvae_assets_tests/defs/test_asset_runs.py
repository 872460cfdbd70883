"""The per-dataset assets materialised in process: the real plate and a small demo end to end, the same
seed giving the same split, and refusals (a feature change, a bad file) that keep the stored partition."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from cpvae_assets.ingestion.demo_data import DemoConfig, generate_demo
from cpvae_assets.preprocessing.splits import FRACTIONS, SPLITS, scale
from cpvae_assets.schema import feature_columns
from cpvae_assets.storage.sql import query
from cpvae_assets.storage.tables import read_table
from cpvae_assets_tests.support.dagster_runs import PLATE, land_plate, materialise, part
from cpvae_assets_tests.support.helpers import failure_text, sha256
from cpvae_assets_tests.support.real_data import REAL_CONSENSUS

SMALL_DEMO = DemoConfig(n_single_moas=8, n_pairs=3, n_synergistic=1, compounds_per_moa=2, plate_maps=2,
                        dmso_per_plate_map=10, replicates=2, n_features=60)
ALL_CHECKS = {"required_metadata", "feature_count", "no_nonfinite_features", "split_proportions",
              "every_stratum_in_training"}


# --------------------------------------------------------------------------------------------- end to end


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


def test_real_consensus_signatures_end_to_end(lake: Path, instance: dg.DagsterInstance) -> None:
    """The registry's l1000_consensus: MOA join counts in the metadata, robust scaling recorded, the
    split stratified by MOA group and saying so in the stored table."""
    dataset = "l1000_consensus"
    landing = lake / "landing" / dataset
    landing.mkdir(parents=True)
    shutil.copyfile(REAL_CONSENSUS, landing / REAL_CONSENSUS.name)
    result = materialise(lake, instance, ["raw_profiles", "normalised_splits"], dataset=dataset)
    assert result.success, failure_text(result)
    assert all(e.passed for e in result.get_asset_check_evaluations())

    raw = result.asset_materializations_for_node("raw_profiles")[0].metadata
    assert (raw["profiles"].value, raw["feature_count"].value, raw["controls"].value) == (1170, 978, 0)
    assert (raw["moa_join_profiles"].value, raw["moa_join_matched"].value) == (1170, 1044)
    assert raw["moa_join"].value == "Metadata_perturbagen -> l1000_consensus_drugbank_moa.tsv:drugbank_id"
    assert len(raw["moa_join_without_moa_sample"].value.split(", ")) == 10
    assert raw["control"].value == "zero_signature"
    logged = [e.message for e in instance.all_logs(result.run_id) if e.message]
    assert any("1044 of 1170 profiles have an MOA" in m for m in logged)

    splits = result.asset_materializations_for_node("normalised_splits")[0].metadata
    assert splits["scaling"].value == "robust" and splits["clip_quantiles"].value == [0.005, 0.995]
    assert splits["stratified_by"].value == "MOA group (the data have no plate or cell line)"
    assert 0.005 < splits["train_clipped_fraction"].value < 0.015
    frame = read_table(part(lake, "normalised_splits", dataset=dataset))
    scaler = read_table(part(lake, "normalised_splits", "scaler", dataset=dataset))
    assert set(frame["stratified_by"]) == {"MOA group (the data have no plate or cell line)"}
    assert "stratified_by" not in feature_columns(frame) and len(feature_columns(frame)) == 978
    assert scaler[["clip_low", "clip_high"]].notna().all().all()
    features = list(scaler["feature"])
    assert frame[features].to_numpy().min() == 0.0 and frame[features].to_numpy().max() == 1.0
    # the stored scaler alone reproduces the stored values from the raw profiles
    stored_raw = read_table(part(lake, "raw_profiles", dataset=dataset)).set_index("profile_id")
    again = scale(stored_raw.loc[frame["profile_id"], features].to_numpy(), scaler).astype(np.float32)
    np.testing.assert_array_equal(again, frame[features].to_numpy())


# --------------------------------------------------------------------------------------------- reproducibility


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


# --------------------------------------------------------------------------------------------- refusals


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
