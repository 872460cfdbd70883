"""``cpvae predict A B``: the LSA prediction for any two MOAs present as singles, including
combinations no compound has, and what it resembles among the real profiles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cpvae_assets.models.latent import LatentModel
from cpvae_assets.schema import CONTROL_LABEL, feature_columns, latent_columns_of, pair_key, parse_moa

CONTROL_KEY = CONTROL_LABEL.lower()


class UnknownMoaError(ValueError):
    """An MOA with no single-MOA compound in the dataset."""


@dataclass
class Prediction:
    expression: str
    profile: pd.Series  # predicted profile in the scaled feature space
    nearest_compounds: pd.DataFrame  # compound, moa, l2
    nearest_groups: pd.DataFrame  # moa group, l2 (profiles without an MOA annotation are in no group)
    observed: bool  # some compound in the dataset carries exactly A|B
    unannotated_profiles: int = 0  # left out of the groups


def single_moa_labels(splits: pd.DataFrame) -> pd.Series:
    """Lower-case single MOA per profile (DMSO for controls), NaN otherwise."""
    parsed = splits["moa"].map(parse_moa)
    label = parsed.map(lambda p: p[0].lower() if len(p) == 1 else None)
    return label.mask(splits["is_control"], CONTROL_KEY)


def predict_combination(model: LatentModel, splits: pd.DataFrame, embeddings: pd.DataFrame, moa_a: str, moa_b: str,
                        top: int = 5) -> Prediction:
    features = feature_columns(splits)
    labels = single_moa_labels(splits)
    wanted = [moa_a.strip().lower(), moa_b.strip().lower()]
    missing = [m for m, w in zip((moa_a, moa_b), wanted) if not (labels == w).any()]
    if missing:
        known = sorted(set(labels.dropna()) - {CONTROL_KEY})
        raise UnknownMoaError(f"no single-MOA compound for {missing}; known single MOAs include {known[:15]}")
    z_cols = latent_columns_of(embeddings)
    z = embeddings.set_index("profile_id").loc[splits["profile_id"], z_cols].to_numpy(np.float64)
    mean_z = {w: z[(labels == w).to_numpy()].mean(axis=0) for w in [*wanted, CONTROL_KEY]}
    z_hat = mean_z[wanted[0]] - mean_z[CONTROL_KEY] + mean_z[wanted[1]]
    profile = model.decode(z_hat[None].astype(np.float32))[0]
    x = splits[features].to_numpy(np.float64)
    by_compound = pd.DataFrame(x).groupby(splits["compound"].to_numpy()).mean()
    compound_moa = splits.groupby("compound")["moa"].first()
    dist = np.linalg.norm(by_compound.to_numpy() - profile, axis=1)
    nearest = pd.DataFrame({"compound": by_compound.index, "moa": compound_moa.reindex(by_compound.index).values, "l2": dist})
    group_key = splits["moa"].map(pair_key).mask(splits["is_control"], CONTROL_KEY)
    annotated = (group_key != "").to_numpy()
    by_group = pd.DataFrame(x[annotated]).groupby(group_key.to_numpy()[annotated]).mean()
    groups = pd.DataFrame({"moa_group": by_group.index, "l2": np.linalg.norm(by_group.to_numpy() - profile, axis=1)})
    pair = pair_key("|".join(wanted))
    return Prediction(
        expression=f"decode(mean_z({moa_a}) - mean_z(DMSO) + mean_z({moa_b}))",
        profile=pd.Series(profile, index=features),
        nearest_compounds=nearest.nsmallest(top, "l2").reset_index(drop=True),
        nearest_groups=groups.nsmallest(top, "l2").reset_index(drop=True),
        observed=bool((group_key == pair).any()),
        unannotated_profiles=int((~annotated).sum()),
    )
