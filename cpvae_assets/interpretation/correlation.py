"""Latent feature correlation (Supplementary Figure 5): how entangled a model's latent space is."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cpvae_assets.schema import latent_columns_of


def latent_matrix(embeddings: pd.DataFrame) -> pd.DataFrame:
    z_cols = latent_columns_of(embeddings)
    if not z_cols:
        raise ValueError("embeddings have no latent columns (z_0, z_1, ...)")
    return embeddings[z_cols]


def latent_correlation(embeddings: pd.DataFrame) -> pd.DataFrame:
    """Pearson correlation of the latent features over all profiles, long form (latent_i, latent_j, r).
    A latent feature that is constant over the profiles (a collapsed unit) has r = NaN, not 0."""
    z = latent_matrix(embeddings)
    if len(z) < 3:
        raise ValueError(f"{len(z)} profiles are too few for a correlation (need at least 3)")
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.corrcoef(z.to_numpy(np.float64), rowvar=False)
    r = np.atleast_2d(r)
    names = list(z.columns)
    return pd.DataFrame({"latent_i": np.repeat(names, len(names)), "latent_j": np.tile(names, len(names)),
                         "r": r.ravel()})


def disentanglement(correlation: pd.DataFrame) -> dict[str, float]:
    """Mean and max absolute off-diagonal correlation (lower: more disentangled) and the number of
    collapsed (constant) latent features, whose correlations are undefined and left out."""
    off = correlation[correlation["latent_i"] != correlation["latent_j"]]
    finite = off["r"].dropna()
    diag = correlation[correlation["latent_i"] == correlation["latent_j"]]
    return {"mean_abs_correlation": float(finite.abs().mean()) if len(finite) else float("nan"),
            "max_abs_correlation": float(finite.abs().max()) if len(finite) else float("nan"),
            "collapsed_latent_features": int(diag["r"].isna().sum()),
            "latent_features": len(diag)}


def correlation_matrix(correlation: pd.DataFrame) -> pd.DataFrame:
    names = list(dict.fromkeys(correlation["latent_i"]))
    return correlation.pivot(index="latent_i", columns="latent_j", values="r").loc[names, names]
