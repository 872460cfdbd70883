"""``remote_files``: the registered LINCS files of the public manifest, verified or downloaded.

Downloaded files land in ``data_lake/landing/<dataset>/``, where the landing sensor picks them up.
"""


import dagster as dg
import pandas as pd

from cpvae_assets.ingestion.fetch import FetchError
from cpvae_assets.ingestion.registry import load_registry
from cpvae_assets.orchestration.resources import LincsRemoteResource
from cpvae_assets.storage.lake import Lake


class RemoteConfig(dg.Config):
    download: bool = False
    """Download absent or changed files (needs the network); otherwise only verify what is there."""
    datasets: list[str] = []
    """Registered datasets to handle; empty means every dataset that lists remote files."""


# a network that gave up after the download's own retries may be back in minutes; a refusal (sha256,
# size, 404) will not change and fails at once (Failure(allow_retries=False))
NETWORK_RETRY = dg.RetryPolicy(max_retries=2, delay=60, backoff=dg.Backoff.EXPONENTIAL)


@dg.asset(group_name="ingestion", kinds={"python", "parquet"}, retry_policy=NETWORK_RETRY)
def remote_files(context: dg.AssetExecutionContext, config: RemoteConfig, lake: dg.ResourceParam[Lake],
                 lincs_remote: LincsRemoteResource) -> pd.DataFrame:
    """Status of every remote LINCS file the registry names: verified in the landing folder or absent."""
    registry = load_registry()
    names = config.datasets or [n for n, s in registry.items() if s.remote_files]
    unknown = [n for n in names if n not in registry or not registry[n].remote_files]
    if unknown:
        # a wrong name in the run config fails the same way on every retry
        raise dg.Failure(f"no remote files registered for {unknown}", allow_retries=False)
    rows = []
    for name in names:
        spec, landing = registry[name], lake.landing(name)
        if config.download:
            try:
                paths = lincs_remote.fetch(spec, landing)
            except FetchError as exc:
                if exc.transient:
                    raise
                raise dg.Failure(str(exc), allow_retries=False) from exc
            for path in paths:
                context.log.info(f"{name}: {path.name} verified in {landing}")
        rows += lincs_remote.status(spec, landing)
    frame = pd.DataFrame(rows)
    context.add_output_metadata({"files": len(frame), "verified": int((frame["status"] == "verified").sum()),
                                 "manifest": str(lincs_remote.manifest_path)})
    return frame


weekly_remote_check = dg.ScheduleDefinition(
    name="weekly_remote_manifest_check",
    cron_schedule="0 6 * * 1",
    target=[remote_files],
    run_config=dg.RunConfig(ops={"remote_files": RemoteConfig(download=True)}),
    default_status=dg.DefaultScheduleStatus.STOPPED,  # downloads ~0.5 GB: opt in from the UI
    description="Every Monday: re-check the LINCS manifest and download new or changed files into landing.",
)
