"""Splits and scaling: proportions, stratification, train-only fitting, reproducibility, checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cpvae_assets.preprocessing.quality import finite_features, split_proportions, strata_in_training
from cpvae_assets.preprocessing.splits import assign_splits, normalise_splits


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
