"""Latent traversal (method.md, Interpretation): decode z_i = +3 and z_i = -3 with all other latent
features 0; the difference per input feature is that feature's contribution to latent feature i."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cpvae_assets.models.latent import LatentModel, PcaModel

MAGNITUDE = 3.0
TRAVERSAL_COLUMNS = ["latent_feature", "feature", "difference", "abs_difference", "rank"]


class TraversalError(ValueError):
    """A decoder that returns NaN or inf for a traversal point."""


def prior_scale(model: LatentModel) -> np.ndarray:
    """Standard deviation of each latent feature's prior: 1 for a VAE; for PCA the component's
    standard deviation, so +-3 means +-3 SD there too and the two traversals compare."""
    if isinstance(model, PcaModel):
        return np.sqrt(model.pca.explained_variance_).astype(np.float32)
    return np.ones(model.latent_dim, np.float32)


def latent_traversal(model: LatentModel, features: list[str], magnitude: float = MAGNITUDE) -> pd.DataFrame:
    """Long table: one row per latent feature x input feature with decode(+m) - decode(-m) and its
    rank by absolute size within the latent feature (1 = largest)."""
    if magnitude <= 0:
        raise ValueError(f"traversal magnitude must be positive, got {magnitude}")
    k = model.latent_dim
    points = np.zeros((2 * k, k), np.float32)
    scale = prior_scale(model)
    for i in range(k):
        points[2 * i, i], points[2 * i + 1, i] = magnitude * scale[i], -magnitude * scale[i]
    decoded = np.asarray(model.decode(points), np.float64)
    if decoded.shape != (2 * k, len(features)):
        raise ValueError(f"decoder returns {decoded.shape[1]} features, expected {len(features)}")
    for i in range(k):
        if not np.isfinite(decoded[2 * i: 2 * i + 2]).all():
            raise TraversalError(f"latent feature z_{i}: the decoder returns NaN or inf at z_{i} = +-{magnitude:g}; "
                                 "the model has diverged, retrain this trained_models partition")
    diff = decoded[0::2] - decoded[1::2]
    frame = pd.DataFrame({
        "latent_feature": np.repeat([f"z_{i}" for i in range(k)], len(features)),
        "feature": np.tile(np.asarray(features, dtype=object), k),
        "difference": diff.ravel(),
    })
    frame["abs_difference"] = frame["difference"].abs()
    frame["rank"] = frame.groupby("latent_feature")["abs_difference"].rank(ascending=False, method="first").astype(int)
    return frame[TRAVERSAL_COLUMNS]


def top_features(traversal: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` input features (genes, for L1000) each latent feature moves most."""
    return traversal[traversal["rank"] <= n].sort_values(["latent_feature", "rank"]).reset_index(drop=True)


def active_features(traversal: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per latent feature: largest and mean absolute traversal effect and whether it is active
    (largest effect >= ``threshold``, in units of the min-max scaled features: 0.05 = 5% of a
    feature's training range). Inactive features are those the decoder ignores (Supplementary Fig. 6)."""
    if threshold < 0:
        raise ValueError(f"activity threshold must be >= 0, got {threshold}")
    per = traversal.groupby("latent_feature", sort=False)["abs_difference"].agg(max_abs="max", mean_abs="mean").reset_index()
    per["active"] = per["max_abs"] >= threshold
    per["threshold"] = threshold
    top = traversal[traversal["rank"] == 1].set_index("latent_feature")["feature"]
    per["top_feature"] = per["latent_feature"].map(top)
    return per
