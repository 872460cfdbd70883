"""Partitions: one per dataset (dynamic: datasets appear when data lands) x model type."""

from __future__ import annotations

from typing import Literal, get_args

import dagster as dg

ModelType = Literal["vanilla", "beta", "mmd", "pca"]
MODEL_TYPES: tuple[str, ...] = get_args(ModelType)

dataset_partitions = dg.DynamicPartitionsDefinition(name="dataset")
model_type_partitions = dg.StaticPartitionsDefinition(list(MODEL_TYPES))
# keys read "<dataset>|<model_type>" (dimensions are ordered alphabetically by name)
dataset_model_partitions = dg.MultiPartitionsDefinition(
    {"dataset": dataset_partitions, "model_type": model_type_partitions}
)


def partition_dimensions(key: str | dg.MultiPartitionKey | None) -> dict[str, str]:
    """``{"dataset": ..., "model_type": ...}`` for multi-partitions, ``{"dataset": ...}`` otherwise."""
    if key is None:
        return {}
    if isinstance(key, dg.MultiPartitionKey):
        return dict(key.keys_by_dimension)
    return {"dataset": key}
