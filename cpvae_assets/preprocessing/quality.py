"""Data-quality rules behind the asset checks, as plain functions of a table."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cpvae_assets.preprocessing.splits import FRACTIONS, SPLITS
from cpvae_assets.schema import CANONICAL


@dataclass
class Outcome:
    passed: bool
    description: str
    metadata: dict[str, object] = field(default_factory=dict)


def required_metadata(frame: pd.DataFrame) -> Outcome:
    missing = [c for c in CANONICAL if c not in frame.columns]
    if missing:
        return Outcome(False, f"missing canonical columns {missing}", {"missing": ", ".join(missing)})
    null_compound = int(frame["compound"].isna().sum())
    null_stratum = int(frame["stratum"].isna().sum())
    passed = null_compound == 0 and null_stratum == 0
    return Outcome(passed, "compound and stratum are set on every profile" if passed else
                   f"{null_compound} profiles without compound, {null_stratum} without stratum",
                   {"profiles_without_compound": null_compound, "profiles_without_stratum": null_stratum,
                    "profiles_without_moa": int(frame["moa"].isna().sum()),
                    "controls": int(frame["is_control"].sum())})


def finite_features(frame: pd.DataFrame, features: list[str]) -> Outcome:
    values = frame[features].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    columns = [features[i] for i in np.flatnonzero(bad.any(axis=0))[:10]]
    return Outcome(not bad.any(), "no NaN or inf in the scaled features" if not bad.any()
                   else f"{int(bad.sum())} non-finite values in {columns}",
                   {"non_finite_cells": int(bad.sum()), "feature_count": len(features)})


def split_proportions(frame: pd.DataFrame, tolerance: float = 0.01) -> Outcome:
    """Splits are disjoint (one label per profile id) and within ``tolerance`` of 80/10/10."""
    n = len(frame)
    share = frame["split"].value_counts().reindex(list(SPLITS), fill_value=0) / max(n, 1)
    deviation = float(np.max(np.abs(share.to_numpy() - np.array(FRACTIONS))))
    disjoint = bool(frame.groupby("profile_id")["split"].nunique().max() == 1) and not frame["profile_id"].duplicated().any()
    passed = disjoint and deviation <= tolerance
    return Outcome(passed, f"splits {'are' if disjoint else 'are NOT'} disjoint; largest deviation from "
                   f"80/10/10 is {deviation:.2%}",
                   {**{f"{s}_fraction": float(share[s]) for s in SPLITS}, "max_deviation": deviation,
                    "disjoint": disjoint})


def strata_in_training(frame: pd.DataFrame, min_size: int = 1) -> Outcome:
    """Every stratum of at least ``min_size`` profiles has training profiles. A plate must (1): a
    model that never saw it cannot be judged on it. An MOA group standing in for a missing plate
    (``min_size`` = the split's pooling threshold) need not when it is small: a group of one compound
    cannot be in every split."""
    sizes = frame["stratum"].astype(str).value_counts()
    all_strata = set(sizes[sizes >= min_size].index)
    trained = set(frame.loc[frame["split"] == "train", "stratum"].astype(str))
    absent = sorted(all_strata - trained)
    what = "stratum" if min_size <= 1 else f"stratum of at least {min_size} profiles"
    return Outcome(not absent, f"every {what} has training profiles" if not absent
                   else f"{len(absent)} strata have no training profiles: {absent[:10]}",
                   {"strata": len(all_strata), "strata_without_training": len(absent),
                    "smaller_strata_not_checked": int((sizes < min_size).sum())})
