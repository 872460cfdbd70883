"""Train/validation/test splits stratified by plate or cell line (or, for data without either, by MOA
group), and 0-1 scaling fitted on train.

Min-max (the paper's): values of validation and test rows may fall outside [0, 1]; they are kept, not
clipped, because clipping would hide exactly the shift between splits that a validation loss is meant
to reveal, and the decoder's sigmoid simply cannot reach them (the loss says so honestly).

Robust: heavy-tailed data (L1000 consensus z-scores run from -207 to 203 with 98% inside [-8, 7])
squeeze almost every value into a narrow band under min-max, and a model then learns the outliers.
Each feature is first clipped to quantiles of its training values, then min-max scaled over the
clipped training range; every split lands in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from cpvae_assets.schema import DEFAULT_CLIP_QUANTILES, SCALINGS

SPLITS = ("train", "validation", "test")
FRACTIONS = (0.8, 0.1, 0.1)
MIN_STRATUM = 10  # smaller strata are pooled so that every split can hold a share of them


@dataclass
class NormalisedSplits:
    frame: pd.DataFrame  # metadata + ``split`` + scaled float32 features
    scaler: pd.DataFrame  # feature, data_min, data_max, clip_low, clip_high (fitted on train; clip NaN for min-max)
    stratified: bool
    outside_unit_fraction: dict[str, float]
    scaling: str = "minmax"
    clip_quantiles: tuple[float, float] | None = None
    clipped_fraction: dict[str, float] | None = None  # robust: share of values clipped, per split


def stratified_by(stratum_column: str | None) -> str:
    """What a dataset's split is stratified by, in words (stored beside the split and shown in reports)."""
    if stratum_column:
        return f"plate or cell line ({stratum_column})"
    return "MOA group (the data have no plate or cell line)"


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


def fit_scaler(train: np.ndarray, features: list[str], scaling: str = "minmax",
               clip_quantiles: tuple[float, float] | None = None) -> pd.DataFrame:
    """The scaler table of ``train`` (rows x features): the training range, and for robust scaling
    the clip bounds (per-feature quantiles), the range then being that of the clipped values."""
    if scaling not in SCALINGS:
        raise ValueError(f"unknown scaling {scaling!r}; expected one of {', '.join(SCALINGS)}")
    if scaling == "minmax":
        if clip_quantiles is not None:
            raise ValueError("clip_quantiles applies to robust scaling only")
        low = high = np.full(len(features), np.nan)
        data_min, data_max = train.min(axis=0), train.max(axis=0)
    else:
        q_low, q_high = clip_quantiles or DEFAULT_CLIP_QUANTILES
        if not 0 <= q_low < q_high <= 1:
            raise ValueError(f"clip_quantiles {clip_quantiles} must satisfy 0 <= low < high <= 1")
        low, high = np.quantile(train, [q_low, q_high], axis=0)
        clipped = np.clip(train, low, high)
        data_min, data_max = clipped.min(axis=0), clipped.max(axis=0)
    return pd.DataFrame({"feature": features, "data_min": data_min, "data_max": data_max,
                         "clip_low": low, "clip_high": high})


def normalise_splits(
    profiles: pd.DataFrame, features: list[str], seed: int, fractions: tuple[float, float, float] = FRACTIONS,
    scaling: str = "minmax", clip_quantiles: tuple[float, float] | None = None,
) -> NormalisedSplits:
    """Split ``profiles`` (stratified by their ``stratum``) and scale ``features`` with a scaler fitted
    on the training rows: ``"minmax"`` or ``"robust"`` (clip to ``clip_quantiles`` of train first)."""
    missing = [f for f in features if f not in profiles.columns]
    if missing:
        raise ValueError(f"features not in the profiles: {missing[:5]}")
    if scaling not in SCALINGS:
        raise ValueError(f"unknown scaling {scaling!r}; expected one of {', '.join(SCALINGS)}")
    split = assign_splits(profiles["stratum"], seed, fractions)
    values = profiles[features].to_numpy(dtype=np.float64)
    train = (split == "train").to_numpy()
    table = fit_scaler(values[train], features, scaling, clip_quantiles)
    scaled = scale(values, table).astype(np.float32)  # exactly what scale() gives later stages
    meta = profiles.drop(columns=features).assign(split=split.values)
    frame = pd.concat([meta.reset_index(drop=True), pd.DataFrame(scaled, columns=features)], axis=1)
    rows = {name: (split == name).to_numpy() for name in SPLITS}
    outside = {name: float(((scaled[r] < 0) | (scaled[r] > 1)).mean()) for name, r in rows.items()}
    clipped = None
    if scaling == "robust":
        low, high = table["clip_low"].to_numpy(), table["clip_high"].to_numpy()
        clipped = {name: float(((values[r] < low) | (values[r] > high)).mean()) for name, r in rows.items()}
    quantiles = (clip_quantiles or DEFAULT_CLIP_QUANTILES) if scaling == "robust" else None
    return NormalisedSplits(frame, table, bool(split.attrs["stratified"]), outside, scaling,
                            tuple(float(q) for q in quantiles) if quantiles else None, clipped)


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
