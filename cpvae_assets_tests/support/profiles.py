"""Tiny synthetic pycytominer-style profile frames, written in every landing format (CSV, CSV.gz,
Parquet, GCT, GCTX), and the check that an error message names the file and the problem; shared by
the ingestion tests."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from cpvae_assets.ingestion.demo_data import write_gctx
from cpvae_assets.ingestion.registry import DatasetSpec
from cpvae_assets.schema import feature_columns

FEATURES = [
    "Cells_AreaShape_Area",
    "Cells_Intensity_MeanIntensity_DNA",
    "Nuclei_Texture_Variance_RNA_3_0",
    "Cytoplasm_Correlation_Correlation_ER_Mito",
]
META = ["Metadata_broad_sample", "Metadata_moa", "Metadata_mmoles_per_liter", "Metadata_Plate"]
FORMATS = [".csv", ".csv.gz", ".parquet", ".gct", ".gctx"]

SPEC = DatasetSpec(
    name="synthetic_cp",
    kind="cell_painting",
    compound="Metadata_broad_sample",
    moa="Metadata_moa",
    dose="Metadata_mmoles_per_liter",
    stratum="Metadata_Plate",
    control_column="Metadata_broad_sample",
    control_values=("DMSO", ""),
)


# --------------------------------------------------------------------------- synthetic profiles


def cp_frame(n: int = 8, features: list[str] = FEATURES, seed: int = 0) -> pd.DataFrame:
    """A tiny pycytominer level-5 frame: 2 DMSO wells, then compounds; feature values are exact
    multiples of 1/4 so they survive text, float32 (GCTX) and Parquet round trips bit for bit."""
    rng = np.random.default_rng(seed)
    compounds = ["DMSO", "DMSO"] + [f"BRD-K{1000000 + i:07d}-001-01-1" for i in range(n - 2)]
    moas = ["", ""] + [["proteasome inhibitor", "NFkB pathway inhibitor|proteasome inhibitor",
                        "tubulin inhibitor"][i % 3] for i in range(n - 2)]
    doses = ["0", "0"] + [["10", "3.33", "1.11"][i % 3] for i in range(n - 2)]
    frame = pd.DataFrame({
        "Metadata_broad_sample": compounds,
        "Metadata_moa": moas,
        "Metadata_mmoles_per_liter": doses,
        "Metadata_Plate": ["SQ00000001"] * n,
    })
    for name in features:
        frame[name] = rng.integers(-400, 400, size=n) / 4.0
    return frame


def gct_text(frame: pd.DataFrame, features: list[str]) -> str:
    """A hand-written GCT 1.3: features are rows (with one row-metadata field), samples are columns."""
    meta = [c for c in frame.columns if c.startswith("Metadata_")]
    ids = [f"S{i:03d}" for i in range(len(frame))]
    lines = ["#1.3", f"{len(features)}\t{len(frame)}\t1\t{len(meta)}",
             "\t".join(["id", "feature_group"] + ids)]
    for col in meta:
        cells = ["" if pd.isna(v) else str(v) for v in frame[col]]
        lines.append("\t".join([col.removeprefix("Metadata_"), "na"] + cells))
    for feat in features:
        cells = [v if isinstance(v, str) else "" if pd.isna(v) else repr(float(v)) for v in frame[feat]]
        lines.append("\t".join([feat, feat.split("_")[0]] + cells))
    return "\n".join(lines) + "\n"


def write_profiles(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` (Metadata_* + features) in the format named by ``path``'s suffix."""
    features = feature_columns(frame)
    name = path.name
    if name.endswith(".csv.gz"):
        frame.to_csv(path, index=False, compression="gzip")
    elif name.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    elif name.endswith(".gct"):
        path.write_text(gct_text(frame, features))
    elif name.endswith(".gctx"):
        samples = pd.DataFrame({"sample_id": [f"S{i:03d}" for i in range(len(frame))]})
        for col in frame.columns:
            if col.startswith("Metadata_"):
                samples[col.removeprefix("Metadata_")] = frame[col].astype(str).to_numpy(dtype=object)
        samples["values"] = list(frame[features].to_numpy(dtype=np.float32))
        genes = pd.DataFrame({"feature": features, "pr_gene_symbol": [f"G{i}" for i in range(len(features))]})
        write_gctx(path, samples, genes)
    else:  # pragma: no cover - test helper misuse
        raise AssertionError(f"no writer for {path}")
    return path


def assert_names(exc: BaseException, path: Path, *fragments: str) -> None:
    """The error message names the file and every fragment of the problem."""
    message = str(exc)
    assert str(path) in message, f"{message!r} does not name {path}"
    for fragment in fragments:
        assert re.search(fragment, message), f"{message!r} lacks {fragment!r}"
