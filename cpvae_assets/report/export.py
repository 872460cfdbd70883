"""``cpvae export``: a model's latent embeddings and LSA predictions as AnnData (.h5ad), the format
scanpy and pertpy users open directly."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd

from cpvae_assets.schema import latent_columns_of
from cpvae_assets.storage.lake import Lake
from cpvae_assets.storage.paths import DATA_TABLE
from cpvae_assets.storage.tables import atomic_path

Format = Literal["h5ad"]
FORMATS: tuple[str, ...] = get_args(Format)


def _strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable pandas strings as plain object strings: readable by every anndata version."""
    return frame.astype({c: object for c in frame.columns if pd.api.types.is_string_dtype(frame[c])})


def to_anndata(embeddings: pd.DataFrame):
    """The embeddings as AnnData: X and obsm["X_latent"] = latent means, obs = profile metadata,
    var = latent features (for scanpy / pertpy)."""
    import anndata

    z_cols = latent_columns_of(embeddings)
    obs = _strings(embeddings.drop(columns=z_cols).set_index("profile_id"))
    obs.index = obs.index.astype(str).astype(object)
    z = embeddings[z_cols].to_numpy(np.float32)
    # scanpy's convention: embeddings live in obsm (X_pca, X_umap...); X holds them too, var names them
    return anndata.AnnData(X=z, obs=obs, var=pd.DataFrame(index=pd.Index(z_cols, dtype=object)), obsm={"X_latent": z})


def lsa_anndata(predictions: pd.DataFrame, feature_means: pd.DataFrame, zscores: pd.DataFrame | None = None):
    """One observation per predicted A|B profile (``kind = predicted``, one per method) and per real
    A|B mean profile (``kind = real``); X in the scaled feature space, var = features."""
    import anndata

    features = [c for c in feature_means.columns if c not in ("group", "profiles")]
    predicted = predictions[["pair", "method", "expression"]].assign(kind="predicted")
    pairs = list(dict.fromkeys(predictions["pair"]))
    real = feature_means.set_index("group").loc[[p for p in pairs if p in set(feature_means["group"])]]
    real_obs = pd.DataFrame({"pair": real.index, "method": "observed", "expression": "mean of the A|B profiles", "kind": "real"})
    obs = pd.concat([predicted, real_obs], ignore_index=True)
    if zscores is not None and len(zscores):
        obs = obs.merge(zscores[["pair", "method", "l2", "z", "q"]], on=["pair", "method"], how="left")
    x = np.vstack([predictions[features].to_numpy(np.float32), real[features].to_numpy(np.float32)])
    obs.index = pd.Index([f"{k}:{m}:{p}" for k, m, p in zip(obs["kind"], obs["method"], obs["pair"])], dtype=object)
    return anndata.AnnData(X=x, obs=_strings(obs), var=pd.DataFrame(index=pd.Index(features, dtype=object)))


def export(lake: Lake, dataset: str, model_type: str, fmt: str, output: Path, overwrite: bool = False) -> list[Path]:
    """Write ``<dataset>_<model_type>_embeddings.h5ad`` and ``..._lsa_predictions.h5ad`` into
    ``output``; existing files are refused unless ``overwrite``, and nothing is written if any input
    is missing."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    sources = {"embeddings": ("latent_embeddings", DATA_TABLE), "predictions": ("lsa_predictions", DATA_TABLE),
               "means": ("moa_means", "features"), "zscores": ("lsa_zscores", DATA_TABLE)}
    missing = [str(lake.path(asset, dataset, model_type, table)) for asset, table in sources.values()
               if not lake.has(asset, dataset, model_type, table)]
    if missing:
        raise FileNotFoundError(f"{dataset} / {model_type}: not materialised yet: {', '.join(missing)}")
    targets = {name: output / f"{dataset}_{model_type}_{name}.{fmt}" for name in ("embeddings", "lsa_predictions")}
    existing = [str(t) for t in targets.values() if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)}: already exists; pass --overwrite to replace")
    read = {name: lake.table(asset, dataset, model_type, table) for name, (asset, table) in sources.items()}
    adatas = {"embeddings": to_anndata(read["embeddings"]),
              "lsa_predictions": lsa_anndata(read["predictions"], read["means"], read["zscores"])}
    for name, adata in adatas.items():
        adata.uns["cpvae"] = {"dataset": dataset, "model_type": model_type}
        with atomic_path(targets[name]) as tmp:
            adata.write_h5ad(tmp)
    return list(targets.values())
