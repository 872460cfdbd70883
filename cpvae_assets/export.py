"""``cpvae export``: a model's latent embeddings and LSA predictions as AnnData (.h5ad), the format
scanpy and pertpy users open directly."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd

from cpvae_assets.generation import to_anndata
from cpvae_assets.lake import atomic_path, read_table
from cpvae_assets.paths import partition_dir

Format = Literal["h5ad"]
FORMATS: tuple[str, ...] = get_args(Format)


def _strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable pandas strings as plain object strings: readable by every anndata version."""
    return frame.astype({c: object for c in frame.columns if pd.api.types.is_string_dtype(frame[c])})


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


def export(lake: Path, dataset: str, model_type: str, fmt: str, output: Path, overwrite: bool = False) -> list[Path]:
    """Write ``<dataset>_<model_type>_embeddings.h5ad`` and ``..._lsa_predictions.h5ad`` into
    ``output``; existing files are refused unless ``overwrite``, and nothing is written if any input
    is missing."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    sources = {
        "embeddings": partition_dir(lake, "latent_embeddings", dataset, model_type) / "data.parquet",
        "predictions": partition_dir(lake, "lsa_predictions", dataset, model_type) / "data.parquet",
        "means": partition_dir(lake, "moa_means", dataset, model_type) / "features.parquet",
        "zscores": partition_dir(lake, "lsa_zscores", dataset, model_type) / "data.parquet",
    }
    missing = [str(p) for p in sources.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{dataset} / {model_type}: not materialised yet: {', '.join(missing)}")
    targets = {name: output / f"{dataset}_{model_type}_{name}.{fmt}" for name in ("embeddings", "lsa_predictions")}
    existing = [str(t) for t in targets.values() if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)}: already exists; pass --overwrite to replace")
    adatas = {"embeddings": to_anndata(read_table(sources["embeddings"])),
              "lsa_predictions": lsa_anndata(read_table(sources["predictions"]), read_table(sources["means"]),
                                             read_table(sources["zscores"]))}
    for name, adata in adatas.items():
        adata.uns["cpvae"] = {"dataset": dataset, "model_type": model_type}
        with atomic_path(targets[name]) as tmp:
            adata.write_h5ad(tmp)
    return list(targets.values())
