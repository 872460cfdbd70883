"""Leave-MOA-out check (the paper's Supplementary Figure 9): are the best-predicted ``A|B`` still
predicted well when the model never saw a compound with those two mechanisms?

The compounds of the ``top`` best-predicted pairs (most negative z) are removed from the training
split; their singles' compounds stay (the model must still learn A and B). The model is retrained
with the same hyperparameters, and every pair is scored again against a fresh shuffled null.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cpvae_assets.lsa.arithmetic import Design, score, shuffled_null, zscores
from cpvae_assets.models.hyperparameters import Hyperparameters
from cpvae_assets.schema import feature_columns


def _ranked(table: pd.DataFrame) -> pd.DataFrame:
    lsa = table[table["method"] == "lsa"][["pair", "z", "l2"]].copy()
    lsa["rank"] = lsa["z"].rank(method="first").astype(int)
    return lsa


def leave_moa_out(splits: pd.DataFrame, membership: pd.Series, groups: pd.DataFrame, before: pd.DataFrame,
                  model_type: str, hp: Hyperparameters, seed: int = 0, top: int = 5,
                  permutations: int = 200) -> pd.DataFrame:
    from cpvae_assets.models.training import train_model

    ranked_before = _ranked(before)
    held_out = ranked_before.nsmallest(top, "rank")["pair"].tolist()
    if not held_out:
        return pd.DataFrame(columns=["pair", "z_before", "rank_before", "z_after", "rank_after", "held_out", "still_top"])
    features = feature_columns(splits)
    drop = membership.isin(held_out).to_numpy()
    train = splits.loc[(splits["split"] == "train").to_numpy() & ~drop, features].to_numpy(np.float32)
    val = splits.loc[(splits["split"] == "validation").to_numpy() & ~drop, features].to_numpy(np.float32)
    run = train_model(train, val, model_type, hp, seed=seed, n_seeds=1)
    design = Design.build(membership, groups)
    kept = membership.notna().to_numpy()
    x = splits.loc[kept, features].to_numpy(np.float64)
    z = run.model.encode(x.astype(np.float32)).astype(np.float64)
    _, distances, _ = score(design, z, x, run.model.decode, features)
    distances = distances[distances["method"] == "lsa"]
    null = shuffled_null(design, z, x, run.model.decode, permutations, seed)
    after = _ranked(zscores(distances, null[null["method"] == "lsa"]))
    out = ranked_before.merge(after, on="pair", suffixes=("_before", "_after"))
    out["held_out"] = out["pair"].isin(held_out)
    out["still_top"] = out["held_out"] & (out["rank_after"] <= top)
    out["training_profiles_removed"] = int(((splits["split"] == "train").to_numpy() & drop).sum())
    return out.sort_values("rank_before").reset_index(drop=True)
