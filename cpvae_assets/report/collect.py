"""Everything a dataset's report shows, read from the lake; a clear error for what is missing."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from cpvae_assets.schema import MODEL_TYPES, feature_columns
from cpvae_assets.storage.hashing import sha256_of
from cpvae_assets.storage.lake import Lake
from cpvae_assets.storage.paths import DATA_TABLE, figure_file

PER_DATASET = ("normalised_splits", "moa_groups")
# (asset, table) per model type; every one must exist for a model type that has a trained model
PER_MODEL = (("trained_models", "data"), ("training_curves", "data"), ("generation_qc", "data"),
             ("generation_qc", "umap"), ("latent_traversal", "top"), ("feature_group_contributions", "data"),
             ("feature_group_contributions", "active"), ("latent_correlation", "data"),
             ("latent_correlation", "summary"), ("lsa_zscores", "data"), ("lsa_zscores", "summary"),
             ("lsa_distances", "map"), ("method_comparison", "data"))
# (asset, figure) per model type, embedded as the asset drew it (drawn here from its table where the
# partition has none, as one stored by an older version)
FIGURES = (("training_curves", "curves"), ("generation_qc", "umap"), ("latent_traversal", "traversal"),
           ("feature_group_contributions", "heatmap"), ("feature_group_contributions", "active"),
           ("latent_correlation", "heatmap"))


def report_inputs() -> list[tuple[str, str]]:
    """Every (asset, model type) a report may read; model type "" for per-dataset assets."""
    pairs = [(a, "") for a in PER_DATASET] + [(a, m) for m in MODEL_TYPES for a, _ in PER_MODEL]
    return list(dict.fromkeys(pairs))


class MissingAssets(FileNotFoundError):
    """The dataset (or one of its model types) has not been materialised far enough for a report."""


@dataclass
class ReportData:
    dataset: str
    kind: str
    splits: pd.DataFrame  # metadata of every profile (no features)
    n_features: int
    groups: pd.DataFrame
    model_types: list[str]
    tables: dict[tuple[str, str, str], pd.DataFrame]  # (asset, table, model_type) -> frame
    files: list[dict] = field(default_factory=list)  # provenance of every file read (Parquet, PNG)
    incomplete: dict[str, list[str]] = field(default_factory=dict)  # model type -> assets not materialised
    figures: dict[tuple[str, str, str], bytes] = field(default_factory=dict)  # (asset, figure, model_type) -> PNG

    def table(self, asset: str, name: str, model_type: str) -> pd.DataFrame:
        return self.tables[(asset, name, model_type)]

    def figure(self, asset: str, name: str, model_type: str, draw: Callable[[], bytes]) -> bytes:
        """The PNG the asset stored, else ``draw()``."""
        stored = self.figures.get((asset, name, model_type))
        return stored if stored is not None else draw()

    def stacked(self, asset: str, name: str = "data") -> pd.DataFrame:
        """One table of every model type, with a ``model_type`` column first."""
        frames = [self.table(asset, name, m).assign(model_type=m) for m in self.model_types]
        columns = list(dict.fromkeys(c for f in frames for c in f.columns))
        # all-NA columns left out of the concat (pandas deprecates typing by them) and restored after
        frames = [f.dropna(axis=1, how="all") for f in frames if len(f)] or frames[:1]
        stacked = pd.concat(frames, ignore_index=True).reindex(columns=columns)
        return stacked[["model_type"] + [c for c in stacked.columns if c != "model_type"]]


def _read(lake: Lake, files: list[dict], asset: str, dataset: str, model_type: str | None, table: str = DATA_TABLE,
          columns: list[str] | None = None) -> pd.DataFrame:
    meta = lake.metadata(asset, dataset, model_type, table)
    files.append({"asset": asset, "model_type": model_type or "", "table": table,
                  "sha256": sha256_of(lake.path(asset, dataset, model_type, table)),
                  "code_version": str(meta.get("code_version", "")),
                  "config": json.dumps(meta["config"], sort_keys=True) if meta.get("config") else "",
                  "input_files": len(meta.get("inputs") or {})})
    return lake.table(asset, dataset, model_type, table, columns)


def collect(lake: Lake, dataset: str, kind: str) -> ReportData:
    """Read the dataset's tables; raise ``MissingAssets`` naming every asset still to materialise."""
    missing = [a for a in PER_DATASET if not lake.has(a, dataset)]
    incomplete: dict[str, list[str]] = {}
    for m in MODEL_TYPES:
        absent = [f"{a}_{n}" if n != DATA_TABLE else a for a, n in PER_MODEL if not lake.has(a, dataset, m, n)]
        if absent:
            incomplete[m] = list(dict.fromkeys(absent))
    model_types = [m for m in MODEL_TYPES if m not in incomplete]
    if missing or not model_types:
        needed = missing + [f"{a} ({m})" for m, absent in incomplete.items() for a in absent]
        raise MissingAssets(f"{dataset}: cannot write a report, these assets are not materialised yet: "
                            f"{', '.join(needed)} (make demo, or materialise them in the Dagster UI)")
    files: list[dict] = []
    names = lake.columns("normalised_splits", dataset)
    features = feature_columns(names)
    splits = _read(lake, files, "normalised_splits", dataset, None, columns=[c for c in names if c not in set(features)])
    groups = _read(lake, files, "moa_groups", dataset, None)
    tables = {}
    figures = {}
    for m in model_types:
        for asset, name in PER_MODEL:
            tables[(asset, name, m)] = _read(lake, files, asset, dataset, m, name)
        for asset, name in FIGURES:
            path = figure_file(lake.folder(asset, dataset, m), name)
            if path.is_file():
                figures[(asset, name, m)] = path.read_bytes()
                # committed with the partition's tables: their provenance is the figure's
                table = next(f for f in files if (f["asset"], f["model_type"]) == (asset, m))
                files.append({**table, "table": path.name, "sha256": sha256_of(path)})
    return ReportData(dataset, kind, splits, len(features), groups, model_types, tables, files, incomplete, figures)
