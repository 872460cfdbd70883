"""CellProfiler feature names -> compartment x channel x feature group, and each group's share of a
latent feature's traversal effect (the paper's Figure 4).

Names follow ``<Compartment>_<FeatureGroup>_<Measurement>[_<Channel>][_<scale>...]``. A feature that
measures two channels (``Correlation_*_DNA_AGP``) belongs to both channel groups. Names that do not
fit are kept in the group ``other`` and listed, never dropped.
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import leaves_list, linkage

COMPARTMENTS = ("Cells", "Cytoplasm", "Nuclei")
CHANNELS = ("DNA", "RNA", "ER", "AGP", "Mito")
FEATURE_GROUPS = ("AreaShape", "Intensity", "Texture", "Correlation", "Granularity", "RadialDistribution",
                  "Neighbors", "Location", "Number", "Children", "Parent", "ObjectSkeleton")
NO_CHANNEL = "none"
OTHER = "other"
# LINCS and cpg0016 spell the channels with an "Orig" prefix in some batches
_CHANNEL = re.compile(r"^(?:Orig)?(DNA|RNA|ER|AGP|Mito)$")
PARSED_COLUMNS = ["feature", "compartment", "feature_group", "measurement", "channel", "group", "parsed"]
GroupBy = Literal["compartment_channel", "feature_group", "compartment"]


def parse_feature_names(names: list[str]) -> pd.DataFrame:
    """One row per feature and channel it measures (``channel = none`` for shape features);
    ``parsed = False`` rows (group ``other``) are the names that do not follow CellProfiler's pattern."""
    rows = []
    for name in names:
        parts = str(name).split("_")
        if len(parts) < 3 or parts[0] not in COMPARTMENTS or parts[1] not in FEATURE_GROUPS:
            rows.append((name, OTHER, OTHER, OTHER, OTHER, OTHER, False))
            continue
        compartment, group = parts[0], parts[1]
        channels = list(dict.fromkeys(m.group(1) for p in parts[2:] if (m := _CHANNEL.match(p))))
        measurement = next((p for p in parts[2:] if not _CHANNEL.match(p) and p != group), parts[2])
        for channel in channels or [NO_CHANNEL]:
            rows.append((name, compartment, group, measurement, channel, f"{compartment}_{channel}", True))
    return pd.DataFrame(rows, columns=PARSED_COLUMNS)


def unparsed(parsed: pd.DataFrame) -> list[str]:
    return parsed.loc[~parsed["parsed"], "feature"].tolist()


def _group_column(parsed: pd.DataFrame, by: GroupBy) -> pd.Series:
    if by == "compartment_channel":
        return parsed["group"]
    if by in ("feature_group", "compartment"):
        return parsed[by]
    raise ValueError(f"by must be one of compartment_channel, feature_group, compartment; got {by!r}")


def group_contributions(traversal: pd.DataFrame, parsed: pd.DataFrame,
                        by: GroupBy = "compartment_channel") -> pd.DataFrame:
    """Mean absolute traversal difference of each group's features per latent feature, and its
    ``share``: normalised so the groups of one latent feature sum to 1 (the paper normalised by column)."""
    membership = parsed.assign(group=_group_column(parsed, by))[["feature", "group"]].drop_duplicates()
    merged = traversal[["latent_feature", "feature", "abs_difference"]].merge(membership, on="feature", how="inner")
    if merged.empty:
        raise ValueError("no traversal feature matches a parsed feature name")
    table = (merged.groupby(["latent_feature", "group"], sort=False)
             .agg(mean_abs_contribution=("abs_difference", "mean"), features=("feature", "nunique")).reset_index())
    total = table.groupby("latent_feature")["mean_abs_contribution"].transform("sum")
    table["share"] = np.where(total > 0, table["mean_abs_contribution"] / total.where(total > 0, 1), 0.0)
    return table.assign(grouping=by)


def contribution_matrix(contributions: pd.DataFrame) -> pd.DataFrame:
    """Groups (rows) x latent features (columns) of ``share``, latent features in z order."""
    matrix = contributions.pivot(index="group", columns="latent_feature", values="share").fillna(0.0)
    order = sorted(matrix.columns, key=lambda c: int(str(c).split("_")[-1]) if str(c).split("_")[-1].isdigit() else 0)
    return matrix[order]


def cluster_order(matrix: pd.DataFrame, method: str = "average") -> tuple[np.ndarray | None, np.ndarray | None]:
    """Linkages (scipy, Euclidean) of the rows and the columns; None for an axis of fewer than two."""
    values = matrix.to_numpy(float)
    rows = linkage(values, method=method) if values.shape[0] > 1 else None
    cols = linkage(values.T, method=method) if values.shape[1] > 1 else None
    return rows, cols


def clustered(matrix: pd.DataFrame, method: str = "average") -> pd.DataFrame:
    """``matrix`` with rows and columns in the leaf order of their dendrograms."""
    rows, cols = cluster_order(matrix, method)
    r = leaves_list(rows) if rows is not None else np.arange(matrix.shape[0])
    c = leaves_list(cols) if cols is not None else np.arange(matrix.shape[1])
    return matrix.iloc[r, c]
