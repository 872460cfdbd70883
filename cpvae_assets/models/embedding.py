"""Latent embeddings: the latent means of every profile (all splits) beside its metadata."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cpvae_assets.models.latent import LatentModel
from cpvae_assets.schema import feature_columns, latent_columns


def embed(model: LatentModel, splits: pd.DataFrame) -> pd.DataFrame:
    """z_mean of every profile beside its metadata (the features are dropped)."""
    features = feature_columns(splits)
    z = model.encode(splits[features].to_numpy(np.float32))
    meta = splits.drop(columns=features).reset_index(drop=True)
    return pd.concat([meta, pd.DataFrame(z, columns=latent_columns(z.shape[1]))], axis=1)
