"""The landing sensor: new or changed files in a landing folder start the dataset's refresh (its
``dataset_inputs`` run; ``defs/refresh.py`` runs the rest of the plan).

Content the ``raw_profiles`` asset rejected (its run is tagged ``cpvae/rejected=<sha256>``) is not
requested again, even after a cursor reset: the sensor logs why and waits for the content to change.
"""


import json

import dagster as dg

from cpvae_assets.ingestion.landing import fingerprint
from cpvae_assets.orchestration.partitions import dataset_partitions
from cpvae_assets.orchestration.tags import HASH_TAG, REASON_TAG, REFRESH_TAG, REJECTED_TAG
from cpvae_assets.storage.lake import Lake
from cpvae_assets.storage.paths import UnsafePathError, check_name, inside

# by key, not by import: importing the asset here would make the defs loader see it twice
RAW_PROFILES = dg.AssetKey("raw_profiles")
# rejected hashes remembered per dataset in the cursor (the run tags are the durable record)
MAX_REJECTED = 20


def _rejection(instance: dg.DagsterInstance, dataset: str, digest: str) -> str | None:
    """Why a run of ``raw_profiles`` rejected this exact landing content, or None."""
    runs = instance.get_runs(dg.RunsFilter(tags={REJECTED_TAG: digest, "dagster/partition": dataset}), limit=1)
    return runs[0].tags.get(REASON_TAG, "rejected") if runs else None


def _finished(instance: dg.DagsterInstance, dataset: str, digest: str) -> bool:
    """Whether the run requested for this content has ended (so there is nothing left to wait for)."""
    runs = instance.get_runs(dg.RunsFilter(tags={HASH_TAG: digest, "dagster/partition": dataset}), limit=1)
    return bool(runs) and runs[0].is_finished


def _last_ingested_hash(instance: dg.DagsterInstance, dataset: str) -> str | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RAW_PROFILES, asset_partitions=[dataset]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    value = records[0].asset_materialization.metadata.get("landing_sha256")
    return getattr(value, "value", None)


@dg.sensor(job_name="dataset_inputs", minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.RUNNING)
def landing_sensor(context: dg.SensorEvaluationContext, lake: dg.ResourceParam[Lake]) -> dg.SensorResult:
    """Adds a ``dataset`` partition per landing folder and refreshes it when its content hash changes
    (the stat of each file only decides whether to hash it again: checking every 10 s costs little)."""
    state = json.loads(context.cursor) if context.cursor else {}
    root = lake.root / "landing"
    known = set(context.instance.get_dynamic_partitions(dataset_partitions.name))
    runs, new, next_state = [], [], {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        try:
            dataset = check_name(folder.name)
            inside(root, folder)  # a symlinked folder that leads out of landing is not a dataset
            digest, files = fingerprint(folder, state.get(dataset, {}).get("files"))
        except (UnsafePathError, ValueError) as exc:
            context.log.warning(f"skipping {folder}: {exc}")
            continue
        before = state.get(dataset, {})
        previous = before.get("hash") or _last_ingested_hash(context.instance, dataset)
        rejected = dict(before.get("rejected", {}))
        # a change counter in the run key: content that returns to an earlier state is ingested again
        changes = before.get("changes", 0) + (digest != previous)
        entry = {"hash": digest, "files": files, "changes": changes}
        pending = before.get("pending")  # content of the last requested run, until that run ends
        if pending and _finished(context.instance, dataset, pending):
            reason = _rejection(context.instance, dataset, pending)
            if reason:
                rejected[pending] = reason
                context.log.warning(f"{folder}: content {pending[:12]} rejected: {reason}")
        elif pending:
            entry["pending"] = pending
        if dataset not in known:
            new.append(dataset)
        if digest != previous:
            reason = rejected.get(digest) or _rejection(context.instance, dataset, digest)
            if reason:
                rejected[digest] = reason
                context.log.warning(f"{folder}: not ingesting content {digest[:12]}, rejected before: {reason}")
            else:
                change = f"{dataset}:{changes}:{digest[:16]}"
                runs.append(dg.RunRequest(partition_key=dataset, run_key=change, tags={HASH_TAG: digest, REFRESH_TAG: change}))
                entry["pending"] = digest
        if rejected:
            entry["rejected"] = dict(list(rejected.items())[-MAX_REJECTED:])
        next_state[dataset] = entry
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=[dataset_partitions.build_add_request(new)] if new else [],
        cursor=json.dumps(next_state),
    )

