"""What the Dagster instance knows about a dataset's inputs: the landing files' content hash and
the ingestion run. Kept apart so the report itself needs no Dagster."""

from __future__ import annotations

import datetime as dt


def landing_provenance(instance, dataset: str) -> dict[str, str]:
    """The last ``raw_profiles`` materialisation of ``dataset``: its files, their SHA-256 and its run."""
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_profiles"), asset_partitions=[dataset]), limit=1).records
    if not records or records[0].asset_materialization is None:
        return {"landing": "no raw_profiles materialisation recorded in this Dagster instance"}
    record = records[0]
    meta = record.asset_materialization.metadata
    when = dt.datetime.fromtimestamp(record.timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    out = {"ingestion run": record.run_id, "ingested at": when}
    for key in ("landing_sha256", "files"):
        if key in meta:
            out[key] = str(getattr(meta[key], "value", meta[key]))
    return out


def run_ids(instance, dataset: str, assets: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The run of the last materialisation of each (asset, model type) of ``dataset``; model type
    ``""`` for per-dataset assets."""
    import dagster as dg

    out = {}
    for asset, model_type in assets:
        key = dg.MultiPartitionKey({"dataset": dataset, "model_type": model_type}) if model_type else dataset
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]), limit=1).records
        if records:
            out[(asset, model_type)] = records[0].run_id
    return out
