"""``raw_profiles``: the landing folder of one dataset, validated, as one table.

A landing folder whose files cannot be ingested fails the run with one line naming the file and the
problem, stores nothing, and tags the run ``cpvae/rejected=<content sha256>`` so the landing sensor
does not request the same content again (it ingests the folder once its content changes).
"""


import dagster as dg

from cpvae_assets.ingestion.landing import IngestError, fingerprint
from cpvae_assets.ingestion.moa_join import MoaJoin
from cpvae_assets.ingestion.readers import ProfileFileError
from cpvae_assets.ingestion.registry import RegistryError, dataset_spec
from cpvae_assets.ingestion.validate import ingest_dataset
from cpvae_assets.orchestration.io_manager import LakeTables
from cpvae_assets.orchestration.partitions import dataset_partitions
from cpvae_assets.orchestration.tags import REASON_TAG, REJECTED_TAG
from cpvae_assets.preprocessing.quality import required_metadata
from cpvae_assets.schema import feature_columns
from cpvae_assets.storage.lake import Lake
from cpvae_assets.storage.paths import UnsafePathError

# errors that depend only on the landing folder's content (and the registry): retrying cannot help
BAD_INPUT = (ProfileFileError, IngestError, RegistryError, UnsafePathError)


class IngestConfig(dg.Config):
    allow_feature_change: bool = False
    """Replace a stored dataset whose feature columns differ from the new files (refused by default)."""


@dg.asset(
    partitions_def=dataset_partitions,
    group_name="ingestion",
    kinds={"pandas", "parquet"},
    check_specs=[
        dg.AssetCheckSpec("required_metadata", asset="raw_profiles", blocking=True,
                          description="compound, MOA, dose, stratum and control columns are present and filled"),
        dg.AssetCheckSpec("feature_count", asset="raw_profiles",
                          description="records how many features the dataset has and which were dropped"),
    ],
)
def raw_profiles(context: dg.AssetExecutionContext, config: IngestConfig, lake: dg.ResourceParam[Lake]):
    """Profiles of one dataset from ``data_lake/landing/<dataset>/`` (CSV, TSV, Parquet, GCT, GCTX; gzipped text too)."""
    dataset = context.partition_key
    digest = None
    try:
        landing = lake.landing(dataset)
        digest, files = fingerprint(landing)
        spec = dataset_spec(dataset, landing)
        result = ingest_dataset(landing, spec)
    except BAD_INPUT as exc:
        raise _rejected(context, digest, str(exc)) from exc
    for note in result.notes:
        context.log.warning(note)
    joined = result.moa_join
    if joined is not None:
        context.log.info(f"{dataset}: {joined.summary()}")
    if lake.has("raw_profiles", dataset) and not config.allow_feature_change:
        old = feature_columns(lake.columns("raw_profiles", dataset))
        if set(old) != set(result.features):
            raise _rejected(
                context, digest,
                f"{landing}: the new files have {len(result.features)} features, the stored dataset "
                f"{len(old)}, and they differ (e.g. new {sorted(set(result.features) - set(old))[:3]}, "
                f"gone {sorted(set(old) - set(result.features))[:3]}); the stored partition is kept. "
                "Re-run with config allow_feature_change=true to replace it.",
            )
    tables = LakeTables(data=result.profiles)
    tables.inputs = {f"landing/{dataset}/{name}": entry[2] for name, entry in files.items()}
    if result.feature_info is not None:
        tables["features"] = result.feature_info.astype(str)
    profiles = result.profiles
    yield dg.Output(
        tables,
        # the landing content is the data version: downstream partitions show as stale in the UI when it
        # changes, and stay fresh when the same content is ingested again
        data_version=dg.DataVersion(digest),
        metadata={
            "profiles": len(profiles),
            "feature_count": len(result.features),
            "controls": int(profiles["is_control"].sum()),
            "compounds": int(profiles["compound"].nunique()),
            "moas": int(profiles["moa"].nunique()),
            "files": ", ".join(result.files),
            "kind": spec.kind,
            "landing_sha256": digest,
            "dropped_features": ", ".join(result.dropped_features) or "none",
            "control": spec.control,
            **(_join_metadata(joined) if joined is not None else {}),
        },
    )
    outcome = required_metadata(profiles)
    yield dg.AssetCheckResult(check_name="required_metadata", passed=outcome.passed,
                              description=outcome.description, metadata=outcome.metadata)
    yield dg.AssetCheckResult(
        check_name="feature_count", passed=len(result.features) > 0,
        metadata={"feature_count": len(result.features), "dropped": len(result.dropped_features)},
    )


def _join_metadata(joined: MoaJoin) -> dict[str, object]:
    """How many profiles the MOA table join matched, and some of those it left without an MOA."""
    return {"moa_join": f"{joined.profile_column} -> {joined.table}:{joined.table_column}",
            "moa_join_profiles": joined.profiles, "moa_join_in_table": joined.in_table,
            "moa_join_matched": joined.matched,
            "moa_join_without_moa_sample": ", ".join(joined.unmatched) or "none"}


def _rejected(context: dg.AssetExecutionContext, digest: str | None, message: str) -> dg.Failure:
    """A one-line failure, and the run tagged with the rejected content's hash (read by the sensor)."""
    line = " ".join(message.split())
    if digest:
        context.instance.add_run_tags(context.run_id, {REJECTED_TAG: digest, REASON_TAG: line[:500]})
    return dg.Failure(description=line, metadata={"landing_sha256": digest or "unknown"}, allow_retries=False)

