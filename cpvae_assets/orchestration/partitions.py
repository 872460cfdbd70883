"""Partitions: one per dataset (dynamic: datasets appear when data lands) x model type."""

from __future__ import annotations

import dagster as dg

from cpvae_assets.schema import MODEL_TYPES

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


def dataset_and_model(context: dg.AssetExecutionContext) -> tuple[str, str]:
    """(dataset, model type) of a ``dataset x model_type`` asset partition being materialised."""
    dims = partition_dimensions(context.partition_key)
    return dims["dataset"], dims["model_type"]
