"""Train/validation/test splits stratified by plate or cell line, and 0-1 scaling fitted on train.

Values of validation and test rows may fall outside [0, 1]: they are kept, not clipped, because
clipping would hide exactly the shift between splits that a validation loss is meant to reveal, and
the decoder's sigmoid simply cannot reach them (the loss says so honestly).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

SPLITS = ("train", "validation", "test")
FRACTIONS = (0.8, 0.1, 0.1)
MIN_STRATUM = 10  # smaller strata are pooled so that every split can hold a share of them


@dataclass
class NormalisedSplits:
    frame: pd.DataFrame  # metadata + ``split`` + scaled float32 features
    scaler: pd.DataFrame  # feature, data_min, data_max (fitted on train)
    stratified: bool
    outside_unit_fraction: dict[str, float]


def assign_splits(strata: pd.Series, seed: int, fractions: tuple[float, float, float] = FRACTIONS) -> pd.Series:
    """Label each row train/validation/test, stratified by ``strata`` where the counts allow."""
    if not np.isclose(sum(fractions), 1.0) or min(fractions) <= 0:
        raise ValueError(f"split fractions must be positive and sum to 1, got {fractions}")
    n = len(strata)
    if n < 10:
        raise ValueError(f"{n} profiles are too few to split 80/10/10 (need at least 10)")
    counts = strata.value_counts()
    pooled = strata.where(~strata.isin(counts[counts < MIN_STRATUM].index), "__rare__").to_numpy()
    index = np.arange(n)
    held_out = fractions[1] + fractions[2]
    try:
        train, rest = train_test_split(index, test_size=held_out, random_state=seed, stratify=pooled)
        val, test = train_test_split(
            rest, test_size=fractions[2] / held_out, random_state=seed, stratify=pooled[rest]
        )
        stratified = True
    except ValueError:
        train, rest = train_test_split(index, test_size=held_out, random_state=seed)
        val, test = train_test_split(rest, test_size=fractions[2] / held_out, random_state=seed)
        stratified = False
    labels = np.empty(n, dtype=object)
    labels[train], labels[val], labels[test] = SPLITS
    out = pd.Series(labels, index=strata.index, name="split", dtype="string")
    out.attrs["stratified"] = stratified
    return out


def normalise_splits(
    profiles: pd.DataFrame, features: list[str], seed: int, fractions: tuple[float, float, float] = FRACTIONS
) -> NormalisedSplits:
    """Split ``profiles`` and min-max scale ``features`` with a scaler fitted on the training rows."""
    missing = [f for f in features if f not in profiles.columns]
    if missing:
        raise ValueError(f"features not in the profiles: {missing[:5]}")
    split = assign_splits(profiles["stratum"], seed, fractions)
    values = profiles[features].to_numpy(dtype=np.float64)
    train = (split == "train").to_numpy()
    scaler = MinMaxScaler().fit(values[train])
    scaled = scaler.transform(values).astype(np.float32)
    meta = profiles.drop(columns=features).assign(split=split.values)
    frame = pd.concat([meta.reset_index(drop=True), pd.DataFrame(scaled, columns=features)], axis=1)
    outside = {
        name: float(((scaled[(split == name).to_numpy()] < 0) | (scaled[(split == name).to_numpy()] > 1)).mean())
        for name in SPLITS
    }
    table = pd.DataFrame({"feature": features, "data_min": scaler.data_min_, "data_max": scaler.data_max_,
                          "clip_low": np.nan, "clip_high": np.nan})
    return NormalisedSplits(frame, table, bool(split.attrs["stratified"]), outside)


def scale(values: np.ndarray, scaler: pd.DataFrame) -> np.ndarray:
    """Apply a stored scaler (a ``normalised_splits_scaler`` table, features in its row order) to raw
    values: clip to ``clip_low`` / ``clip_high`` where set (robust scaling), then min-max with the
    training range (a constant feature maps to 0, as scikit-learn's MinMaxScaler does). Later stages use
    it to bring a profile that is not in the data (the zero signature of z-scored data) into the
    models' input space."""
    values = np.asarray(values, np.float64)
    low, high = scaler["clip_low"].to_numpy(np.float64), scaler["clip_high"].to_numpy(np.float64)
    values = np.where(np.isnan(low), values, np.maximum(values, low))
    values = np.where(np.isnan(high), values, np.minimum(values, high))
    lo, hi = scaler["data_min"].to_numpy(np.float64), scaler["data_max"].to_numpy(np.float64)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (values - lo) / span
