"""Splits and scaling: proportions, stratification, train-only fitting, reproducibility, checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cpvae_assets.preprocessing.quality import finite_features, split_proportions, strata_in_training
from cpvae_assets.preprocessing.splits import MIN_STRATUM, assign_splits, normalise_splits, scale, stratified_by
from cpvae_assets.schema import NO_MOA


def profiles(n: int = 500, plates: int = 5, features: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "profile_id": [f"p{i}" for i in range(n)],
        "compound": rng.choice(["c1", "c2", "DMSO"], n),
        "moa": "x", "dose": 1.0,
        "stratum": [f"plate{i % plates}" for i in range(n)],
        "is_control": False, "source_file": "f.csv",
    })
    values = pd.DataFrame(rng.normal(5, 3, (n, features)), columns=[f"Cells_F_{j}" for j in range(features)])
    return pd.concat([frame, values], axis=1)


@pytest.mark.parametrize("n,plates", [(10, 1), (97, 3), (384, 1), (1524, 6), (6096, 24), (333, 40)])
def test_proportions_within_one_point_and_every_plate_trains(n: int, plates: int) -> None:
    frame = profiles(n, plates)
    split = assign_splits(frame["stratum"], seed=3)
    labelled = frame.assign(split=split.values)
    outcome = split_proportions(labelled)
    # with 10 profiles 8/1/1 is exact; larger sets must be within 1 percentage point
    assert outcome.passed, outcome.description
    assert strata_in_training(labelled).passed


def test_stratified_by_plate() -> None:
    frame = profiles(1000, 4)
    split = assign_splits(frame["stratum"], seed=0)
    shares = pd.crosstab(frame["stratum"], split, normalize="index")
    assert np.allclose(shares["train"], 0.8, atol=0.01)
    assert split.attrs["stratified"]


def test_too_few_profiles_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="too few"):
        assign_splits(pd.Series(["a"] * 5), seed=0)


def test_bad_fractions_refused() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        assign_splits(pd.Series(["a"] * 50), seed=0, fractions=(0.5, 0.3, 0.3))


def test_scaler_is_fitted_on_train_only_and_not_clipped() -> None:
    frame = profiles(400, 4)
    features = [c for c in frame.columns if c.startswith("Cells_")]
    result = normalise_splits(frame, features, seed=0)
    train = result.frame[result.frame["split"] == "train"][features]
    assert np.allclose(train.min(), 0.0) and np.allclose(train.max(), 1.0)
    raw_train = frame.loc[(result.frame["split"] == "train").to_numpy(), features]
    assert np.allclose(result.scaler["data_min"], raw_train.min()) and np.allclose(result.scaler["data_max"], raw_train.max())
    held_out = result.frame[result.frame["split"] != "train"][features].to_numpy()
    # normal data: some held-out values fall outside the training range and are kept as they are
    assert (held_out < 0).any() or (held_out > 1).any()
    assert result.outside_unit_fraction["train"] == 0.0
    assert result.frame[features].dtypes.eq(np.float32).all()


def test_scaler_table_inverts_the_scaling() -> None:
    frame = profiles(200, 2)
    features = [c for c in frame.columns if c.startswith("Cells_")]
    result = normalise_splits(frame, features, seed=0)
    # the stored table alone inverts the scaling (later stages and users need nothing else)
    low, high = result.scaler["data_min"].to_numpy(), result.scaler["data_max"].to_numpy()
    restored = result.frame[features].to_numpy(dtype=np.float64) * (high - low) + low
    assert np.allclose(restored, frame[features].to_numpy(), atol=1e-4)


def test_same_seed_same_split_other_seed_other_split() -> None:
    frame = profiles(300, 3)
    features = [c for c in frame.columns if c.startswith("Cells_")]
    a, b = normalise_splits(frame, features, seed=7), normalise_splits(frame, features, seed=7)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    c = normalise_splits(frame, features, seed=8)
    assert not a.frame["split"].equals(c.frame["split"])


def test_checks_fail_on_broken_tables() -> None:
    frame = profiles(100, 2).assign(split=["train"] * 100)
    assert not split_proportions(frame).passed
    frame.loc[0, "Cells_F_0"] = np.nan
    assert not finite_features(frame, ["Cells_F_0"]).passed
    no_train_plate = frame.assign(split=np.where(frame["stratum"] == "plate1", "test", "train"))
    outcome = strata_in_training(no_train_plate)
    assert not outcome.passed and "plate1" in outcome.description
    duplicated = pd.concat([frame.head(2), frame.head(1)]).assign(split=["train", "test", "test"])
    assert split_proportions(duplicated).metadata["disjoint"] is False


# --------------------------------------------------------------------------- scaling choices, MOA-group strata


def heavy_tailed(n: int = 400, features: int = 8, seed: int = 0) -> pd.DataFrame:
    """z-score-like values: mostly within a few units, a few hundred times larger outliers."""
    frame = profiles(n, 4, features, seed)
    cols = [c for c in frame.columns if c.startswith("Cells_")]
    rng = np.random.default_rng(seed)
    values = rng.standard_t(2, (n, len(cols))) * 2
    values[rng.integers(0, n, 6), rng.integers(0, len(cols), 6)] = rng.choice([-200.0, 200.0], 6)
    frame[cols] = values
    return frame


def test_robust_scaling_clips_to_training_quantiles_then_min_max() -> None:
    frame = heavy_tailed()
    features = [c for c in frame.columns if c.startswith("Cells_")]
    result = normalise_splits(frame, features, seed=0, scaling="robust", clip_quantiles=(0.01, 0.99))
    train_rows = (result.frame["split"] == "train").to_numpy()
    raw_train = frame.loc[train_rows, features].to_numpy()
    low, high = np.quantile(raw_train, [0.01, 0.99], axis=0)
    np.testing.assert_allclose(result.scaler["clip_low"], low)
    np.testing.assert_allclose(result.scaler["clip_high"], high)
    # the range is that of the clipped training values, i.e. the quantiles themselves
    np.testing.assert_allclose(result.scaler["data_min"], low)
    np.testing.assert_allclose(result.scaler["data_max"], high)
    scaled = result.frame[features].to_numpy()
    assert scaled.min() == 0.0 and scaled.max() == 1.0  # every split, held-out rows too
    assert all(v == 0.0 for v in result.outside_unit_fraction.values())
    assert result.scaling == "robust" and result.clip_quantiles == (0.01, 0.99)
    assert 0.015 < result.clipped_fraction["train"] <= 0.03  # about 1% (4 of 320 rows) clipped at each end
    # most values spread over the unit interval instead of a narrow band around the outliers' centre
    minmax = normalise_splits(frame, features, seed=0)
    spread, squeezed = result.frame[features].std(), minmax.frame[features].std()
    assert (spread > 1.3 * squeezed).all() and spread.mean() > 1.8 * squeezed.mean()


def test_default_quantiles_and_minmax_leaves_clip_columns_empty() -> None:
    frame = heavy_tailed()
    features = [c for c in frame.columns if c.startswith("Cells_")]
    robust = normalise_splits(frame, features, seed=0, scaling="robust")
    assert robust.clip_quantiles == (0.005, 0.995)
    minmax = normalise_splits(frame, features, seed=0, scaling="minmax")
    assert minmax.scaler[["clip_low", "clip_high"]].isna().all().all()
    assert minmax.clip_quantiles is None and minmax.clipped_fraction is None
    assert list(minmax.scaler.columns) == ["feature", "data_min", "data_max", "clip_low", "clip_high"]


@pytest.mark.parametrize("scaling", ["minmax", "robust"])
def test_scale_reproduces_what_normalise_splits_stored(scaling: str) -> None:
    frame = heavy_tailed(seed=3)
    features = [c for c in frame.columns if c.startswith("Cells_")]
    result = normalise_splits(frame, features, seed=0, scaling=scaling)
    again = scale(frame[features].to_numpy(), result.scaler).astype(np.float32)
    np.testing.assert_array_equal(again, result.frame[features].to_numpy())
    # and a profile that is not in the data, the zero signature, lands where the data's zeros would
    zero = scale(np.zeros((1, len(features))), result.scaler)
    expected = -result.scaler["data_min"].to_numpy() / (result.scaler["data_max"] - result.scaler["data_min"]).to_numpy()
    np.testing.assert_allclose(zero[0], expected)


def test_unknown_scaling_and_misplaced_quantiles_are_refused() -> None:
    frame = profiles(100, 2)
    features = [c for c in frame.columns if c.startswith("Cells_")]
    with pytest.raises(ValueError, match="unknown scaling 'zscore'; expected one of minmax, robust"):
        normalise_splits(frame, features, seed=0, scaling="zscore")
    with pytest.raises(ValueError, match="robust scaling only"):
        normalise_splits(frame, features, seed=0, clip_quantiles=(0.01, 0.99))
    with pytest.raises(ValueError, match="0 <= low < high <= 1"):
        normalise_splits(frame, features, seed=0, scaling="robust", clip_quantiles=(0.5, 0.2))


def test_moa_groups_as_strata_keep_large_groups_balanced_and_only_they_are_checked() -> None:
    frame = profiles(600, 1)
    groups = ["mek inhibitor"] * 300 + ["mek inhibitor|raf inhibitor"] * 150 + [NO_MOA] * 100 + [
        f"rare {i}" for i in range(50)]  # 50 groups of one compound each
    frame["stratum"] = groups
    features = [c for c in frame.columns if c.startswith("Cells_")]
    result = normalise_splits(frame, features, seed=0)
    assert result.stratified
    shares = pd.crosstab(result.frame["stratum"], result.frame["split"], normalize="index")
    assert np.allclose(shares.loc[["mek inhibitor", "mek inhibitor|raf inhibitor", NO_MOA], "train"], 0.8, atol=0.01)
    assert split_proportions(result.frame).passed
    # groups of one compound cannot all train; the check looks at the groups the split could balance
    assert not strata_in_training(result.frame).passed
    outcome = strata_in_training(result.frame, min_size=MIN_STRATUM)
    assert outcome.passed and outcome.metadata["smaller_strata_not_checked"] == 50


def test_what_the_split_was_stratified_by() -> None:
    assert stratified_by(None) == "MOA group (the data have no plate or cell line)"
    assert stratified_by("Metadata_Plate") == "plate or cell line (Metadata_Plate)"
